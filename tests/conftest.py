from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.demo import run_demo

from .programme import Programme


@pytest.fixture
def programme(tmp_path: Path) -> Programme:
    """A fresh programme with the test mentor directory and rules, at 2026-12-01 15:00 UTC."""
    return Programme(tmp_path)


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's programme, walked to its end once per test run (read it, do not change it)."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    run_demo(folder, echo=lambda _: None, summary=lambda _: None)
    return folder / "config.toml"
