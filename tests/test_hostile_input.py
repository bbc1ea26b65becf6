"""Hostile and broken input: nothing escapes, every message ends processed, answered or parked."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.budget import parse_budget
from mailflow.errors import ParseError
from mailflow.form import parse_form
from mailflow.incoming import read_incoming
from mailflow.replies import read_answer

from .programme import DATA, REPO, Programme, request_mail
from .test_workflow import TEEN

SAMPLES = (
    [p.read_bytes() for p in sorted((REPO / "examples").glob("*.eml"))]
    + [p.read_bytes() for p in sorted((DATA / "requests").glob("*.eml"))]
    + [p.read_bytes() for p in sorted((DATA / "noise").glob("*.eml"))]
)


@given(st.text(max_size=400))
def test_the_form_reader_never_raises(text: str) -> None:
    parsed = parse_form(text, max_budget=timedelta(hours=6))
    assert all(p.field and p.message for p in parsed.problems)


@given(st.text(max_size=80))
def test_the_budget_grammar_only_raises_its_own_error(text: str) -> None:
    try:
        budget = parse_budget(text)
    except ParseError:
        return
    assert budget.total_minutes == sum(s.minutes for s in budget.sessions) > 0


@given(st.text(max_size=200))
def test_the_reply_reader_never_raises(text: str) -> None:
    read_answer(text)


def mangle(raw: bytes, rng: random.Random) -> bytes:
    """Truncate, flip bytes, splice junk, break headers, nest MIME: what real mailboxes hold."""
    choice = rng.randrange(7)
    if choice == 0:
        return raw[: rng.randrange(len(raw) + 1)]
    if choice == 1:
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 2:
        cut = rng.randrange(len(raw) + 1)
        return raw[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(200))) + raw[cut:]
    if choice == 3:
        return raw.replace(b"charset=", b"charset=x-" + bytes([rng.randrange(97, 122)]) * 3, 1)
    if choice == 4:
        depth = rng.randrange(50, 400)
        nested = b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth)
        )
        return b"From: deep@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + nested
    if choice == 5:
        return raw.replace(b"Date:", b"Date: Thu, 99 Smarch 20261 25:61:61 +9999\r\nX-Old-Date:", 1)
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))


@given(st.integers(min_value=0, max_value=2**32), st.sampled_from(range(len(SAMPLES))))
def test_reading_any_message_never_raises(seed: int, index: int) -> None:
    incoming = read_incoming(mangle(SAMPLES[index], random.Random(seed)))
    assert incoming.key and incoming.message_id


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2**32))
def test_the_whole_pipeline_files_every_message(tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    rng = random.Random(seed)
    programme = Programme(tmp_path_factory.mktemp("hostile"))
    count = 15
    for _ in range(count):
        programme.deliver(mangle(rng.choice(SAMPLES), rng))
    programme.run()  # the CLI exits 0: no exception escaped
    assert programme.inbox_waiting() == 0
    filed = len(programme.folder("processed")) + len(programme.folder("needs-attention"))
    assert filed == count


def test_logs_carry_no_bodies_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "correct-horse-battery-staple-4242"
    monkeypatch.setenv("MAILFLOW_SECRET", secret)
    programme = Programme(tmp_path)
    programme.deliver(request_mail("danielle.jones@example.org", TEEN))
    with caplog.at_level(logging.DEBUG):
        programme.run()
    assert caplog.records, "the run logs its decisions"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "new request MM-" in logged
    for private in ("teen advisory council", "How do I recruit?", "first meeting", secret):
        assert private not in logged
    state = (tmp_path / "var" / "state.json").read_text()
    assert secret not in state
    assert not (tmp_path / "var" / "secret.key").exists()  # the environment's key was used
