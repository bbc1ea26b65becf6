"""The command line: status, check, the daemon and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from mailflow.cli import main

from .programme import REPO, Programme, only, ref_of
from .test_workflow import TEEN

MAILFLOW = [sys.executable, "-m", "mailflow"]


def wait_until(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds; the deadline only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_status_lists_requests_and_explains_one(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()
    ask = only(programme.new(), "ask")
    ref = ref_of(ask)
    table = programme.cli("status", "--now", "2026-12-01T16:00:00+00:00")
    assert ref in table and "asking" in table and "ask_timeout" in table
    assert "violeta.garza@example.org (asked)" in table
    history = programme.cli("status", ref)
    assert "rule:    Teen services" in history
    assert "candidate 1: Violeta Garza" in history
    assert "received -> asking" in history
    assert "not asked: Aiko Tanaka" in history  # every mentor's reason is there
    data = json.loads(programme.cli("status", "--json"))
    assert data["requests"][0]["ref"] == ref
    assert json.loads(programme.cli("status", ref, "--json"))["state"] == "asking"


def test_status_shows_skipped_messages_with_their_reason(programme: Programme) -> None:
    programme.request("mailer-daemon@example.org", "Delivery failed")
    programme.run()
    table = programme.cli("status")
    assert "skipped" in table and "sent by a mail system" in table


def test_check_accepts_the_project_and_names_a_broken_rule(programme: Programme) -> None:
    assert "fine" in programme.cli("check")
    rules = programme.root / "rules" / "rules.toml"
    rules.write_text(rules.read_text().replace('ask_timeout = "2d"', 'ask_timout = "2d"'))
    result = CliRunner().invoke(main, ["check", "--config", str(programme.config_path)])
    assert result.exit_code == 1
    assert f"{rules}:" in result.output
    assert "unknown key 'ask_timout'; did you mean 'ask_timeout'?" in result.output


def test_the_daemon_handles_new_mail_and_owns_its_state(programme: Programme, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - the daemon writes to it while we test
    daemon = subprocess.Popen(
        [*MAILFLOW, "run", "--config", str(programme.config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        assert wait_until(
            lambda: (
                (programme.root / "var" / "state.json.lock").exists() and (programme.root / "outbox").exists()
            )
        )
        programme.request("danielle.jones@example.org", TEEN)
        assert wait_until(lambda: len(programme.outbox()) == 2), (tmp_path / "daemon.log").read_text()
        second = subprocess.run(
            [*MAILFLOW, "run", "--once", "--config", str(programme.config_path)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert second.returncode == 2
        assert "in use by mailflow (pid" in second.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
    assert programme.inbox_waiting() == 0


def test_run_without_a_config_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "Copy config.example.toml" in result.output


def test_the_demo_walks_every_request_to_its_end(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    out = result.output
    for step in (
        "accepted with a counter-offer",
        "mentor declined",
        "did not answer in time",
        "incomplete -> asking",
        "cancelled by the protege",
        "reflecting -> closed",
        "reflection_reminder",
        "calendar answer from the protege: ACCEPTED",
        "calendar answer from the protege: TENTATIVE",
        "DECLINED session 1",
        "introduced -> asking: asking Marcus Okafor",
        "rescheduled: asked by the protege",
        "answered an earlier version",
    ):
        assert step in out, step
    table = out.split("Where every request ended")[1]
    assert table.count(" closed ") >= 8 and table.count(" cancelled ") == 1
    assert len(list((folder / "outbox" / "new").iterdir())) > 40
    again = CliRunner().invoke(main, ["demo", "--dir", str(folder), "--quiet"])
    assert again.exit_code == 0  # a second demo starts afresh in the same folder
