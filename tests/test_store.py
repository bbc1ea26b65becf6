"""State: atomic writes, one owner, damage detected, history archived."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailflow.errors import StateError
from mailflow.model import Person, Request, State
from mailflow.store import Store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def a_request(ref: str = "MM-7F3K2") -> Request:
    return Request(ref=ref, protege=Person("p@example.org", "P"), created=NOW)


def test_an_interrupted_write_leaves_the_previous_state_readable(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with Store(path) as store:
        store.put(a_request())
        store.commit(NOW)
    store = Store(path)
    store.put(a_request("MM-AAAAA"))
    store.set_meta("unwritable", object())  # json.dump fails half-way through the file
    with pytest.raises(TypeError):
        store.commit(NOW)
    store.storage.dirty = False
    store.close()
    reopened = Store(path, readonly=True)
    assert reopened.get("MM-7F3K2") is not None
    assert reopened.get("MM-AAAAA") is None
    assert not list(tmp_path.glob(".state.json.*.tmp"))
    json.loads(path.read_text())  # still one whole JSON document


def test_a_second_owner_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with Store(path):
        with pytest.raises(StateError, match="in use by mailflow"):
            Store(path)
        Store(path, readonly=True).get("MM-7F3K2")  # status may still read it


def test_damage_is_detected_and_the_last_good_copy_named(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with Store(path) as store:
        store.put(a_request())
        store.commit(NOW)
        store.put(a_request("MM-AAAAA"))
        store.commit(NOW)
    path.write_text('{"requests": {"1": {"ref": ')  # torn by something else
    with pytest.raises(StateError, match=r"damaged.*state\.json\.prev"):
        Store(path)
    previous = json.loads((tmp_path / "state.json.prev").read_text())
    assert len(previous["requests"]) == 1


def test_finished_requests_move_to_the_archive_and_stay_findable(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with Store(path) as store:
        request = a_request()
        request.move(State.INCOMPLETE, NOW, "test")
        request.move(State.CANCELLED, NOW + timedelta(days=1), "test")
        store.put(request)
        store.commit(NOW)
        assert store.get(request.ref) is None
        assert store.ref_taken(request.ref)
    with Store(path, readonly=True) as store:
        found = store.find(request.ref)
        assert found is not None and found.state is State.CANCELLED
    assert (tmp_path / "archive" / "2026-12.json").exists()
    assert "MM-7F3K2" not in path.read_text()


def test_a_delivery_is_remembered_even_if_killed_before_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    script = f"""
import os, signal
from datetime import datetime, UTC
from pathlib import Path
from mailflow.model import Outgoing
from mailflow.store import Store
store = Store(Path({str(path)!r}))
now = datetime(2026, 12, 1, tzinfo=UTC)
store.queue(Outgoing("<a@x>", None, "ask", ["m@example.org"], b"raw"), now)
store.queue(Outgoing("<b@x>", None, "ask", ["m@example.org"], b"raw"), now)
store.commit(now)
store.handed_over("<a@x>")  # the last byte has left; the answer is not read yet
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with Store(path) as again:
        assert [o.message_id for o in again.pending()] == ["<b@x>"]
