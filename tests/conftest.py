"""Fixtures: a programme on Maildirs, and real servers (servers.py) for the tests that
need them. A server that cannot start fails the test; nothing is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailflow.demo import run_demo

from .programme import Programme
from .servers import Authority, Certificates, Dovecot, SmtpServer

IMAP_PASSWORD = "secret"


@pytest.fixture
def programme(tmp_path: Path) -> Programme:
    """A fresh programme with the test mentor directory and rules, at 2026-12-01 15:00 UTC."""
    return Programme(tmp_path)


@pytest.fixture
def dovecot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    """A private Dovecot with the user `mentoring` (password in MAILFLOW_TEST_IMAP_PASSWORD)."""
    monkeypatch.setenv("MAILFLOW_TEST_IMAP_PASSWORD", IMAP_PASSWORD)
    server = Dovecot(users={"mentoring": IMAP_PASSWORD})
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path / "tls")


@pytest.fixture
def authority(certificates: Certificates) -> Iterator[Authority]:
    """A stand-in for Microsoft Entra ID (HTTPS) with a token-introspection endpoint."""
    server = Authority(certificates)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's programme, walked to its end once per test run (read it, do not change it)."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    run_demo(folder, echo=lambda _: None, summary=lambda _: None)
    return folder / "config.toml"
