"""Hot reload: edits to rules/ and templates/ reach a running daemon once they pass the checks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mailflow.errors import RuleError
from mailflow.reload import LiveFiles

from .programme import DATA, REPO, Programme, of, only, text_of
from .test_cli import MAILFLOW, wait_until
from .test_workflow import TEEN

TEEN_POOL = 'when.formats = ["video", "in person", "shadowing"]\n'
# Marcus only: he offers video and phone, so the formats follow (`mailflow check` insists).
ONLY_MARCUS = 'when.formats = ["video", "phone"]\ncandidates.mentors = ["marcus.okafor@example.org"]\n'


def edit(path: Path, old: str, new: str, *, settled: bool = True) -> None:
    """Save a file the way an editor does; `settled` dates it a few seconds back (saving is over)."""
    text = path.read_text()
    assert old in text, old
    temporary = path.with_name(path.name + ".saving~")
    temporary.write_text(text.replace(old, new, 1))
    os.replace(temporary, path)
    if settled:
        past = time.time() - 5
        os.utime(path, (past, past))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(DATA / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    return rules, templates, tmp_path / "var" / "programme"


def test_an_edit_is_used_once_the_files_are_quiet(folders: tuple[Path, Path, Path]) -> None:
    rules, templates, work = folders
    wall = [time.time()]
    live = LiveFiles(rules, templates, work, settle=1.0, wall_clock=lambda: wall[0])
    first = live.start()
    assert first.ok and live.poll() is None
    edit(rules / "rules.toml", TEEN_POOL, ONLY_MARCUS, settled=False)
    wall[0] = (rules / "rules.toml").stat().st_mtime + 0.2
    assert live.poll() is None  # an editor may still be writing
    wall[0] += 1.0
    loaded = live.poll()
    assert loaded is not None and loaded.ok and loaded.digest != first.digest
    assert loaded.ruleset is not None
    teen = next(r for r in loaded.ruleset.rules if r.name == "Teen services")
    assert teen.pool_mentors == ("marcus.okafor@example.org",)
    assert teen.file == str(rules / "rules.toml")  # the coordinator's file, not the copy
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == [loaded.digest]  # old copy gone
    assert live.poll() is None


def test_a_file_dated_in_the_future_is_used_once_it_stops_changing(folders: tuple[Path, Path, Path]) -> None:
    rules, templates, work = folders
    wall = [time.time()]
    live = LiveFiles(rules, templates, work, settle=1.0, wall_clock=lambda: wall[0])
    live.start()
    edit(rules / "rules.toml", TEEN_POOL, ONLY_MARCUS, settled=False)
    future = wall[0] + 3600  # a skewed clock on the machine the file was saved from
    os.utime(rules / "rules.toml", (future, future))
    assert live.poll() is None  # first seen now
    wall[0] += 1.0
    loaded = live.poll()  # unchanged for a second: used
    assert loaded is not None and loaded.ok


def test_a_broken_edit_is_refused_once_naming_the_real_file(folders: tuple[Path, Path, Path]) -> None:
    rules, templates, work = folders
    live = LiveFiles(rules, templates, work)
    good = live.start()
    edit(templates / "ask.txt", "{% block body %}", "{% block body %}{{ mentor.nickname }}")
    refused = live.poll()
    assert refused is not None and not refused.ok
    (issue,) = refused.issues
    assert issue.path == str(templates / "ask.txt") and issue.line == 2
    assert "'mentor.nickname' does not exist" in issue.message
    assert live.poll() is None  # the same broken version is not reported again
    assert live.current == good.digest
    edit(templates / "ask.txt", "{{ mentor.nickname }}", "")  # back to the version in use
    assert live.poll() is None
    edit(templates / "ask.txt", "{% block body %}", "{% block body %}{{ mentor.nickname }}")
    again = live.poll()  # broken again after a good state: news again
    assert again is not None and not again.ok


def test_start_up_with_broken_files_runs_on_the_last_good_copy(folders: tuple[Path, Path, Path]) -> None:
    rules, templates, work = folders
    with pytest.raises(RuleError, match="unknown key 'ask_timout'"):
        edit(rules / "rules.toml", 'ask_timeout = "2d"', 'ask_timout = "2d"')
        LiveFiles(rules, templates, work).start()  # no good copy yet: refuse to start
    edit(rules / "rules.toml", 'ask_timout = "2d"', 'ask_timeout = "2d"')
    good = LiveFiles(rules, templates, work).start()
    edit(rules / "rules.toml", 'ask_timeout = "2d"', 'ask_timout = "2d"')
    fallback = LiveFiles(rules, templates, work).start()
    assert fallback.ok and fallback.issues
    assert fallback.ruleset is not None and fallback.ruleset.rules[0].file == str(rules / "rules.toml")
    assert "ask_timout" in str(fallback.issues[0]) and str(rules / "rules.toml") in str(fallback.issues[0])
    assert (work / "current").read_text().strip() == good.digest


def test_a_restart_on_broken_files_mails_the_coordinator_once(programme: Programme) -> None:
    programme.run()  # a good start: its checked copy is kept
    rules = programme.root / "rules" / "rules.toml"
    edit(rules, 'ask_timeout = "2d"', 'ask_timout = "2d"')
    programme.run()
    note = only(programme.new(), "rules refused", to="coordinator@library.org")
    assert "unknown key 'ask_timout'; did you mean 'ask_timeout'?" in text_of(note)
    programme.request("danielle.jones@example.org", TEEN)
    programme.run()  # still broken: the request is handled on the last good rules, no second note
    sent = programme.new()
    assert not of(sent, "rules refused")
    assert only(sent, "ask")["To"].addresses[0].addr_spec == "violeta.garza@example.org"


def test_the_running_daemon_takes_good_edits_and_refuses_broken_ones(
    programme: Programme, tmp_path: Path
) -> None:
    templates = programme.root / "templates"
    shutil.copytree(REPO / "templates", templates)
    config = programme.config_path.read_text().replace(str(REPO / "templates"), "templates")
    programme.config_path.write_text(
        config.replace('outbox = "maildir:outbox"', 'outbox = "maildir:outbox"\npoll_seconds = 0.2')
    )
    rules = programme.root / "rules" / "rules.toml"
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "w")  # noqa: SIM115 - the daemon writes to it while we test
    daemon = subprocess.Popen(
        [*MAILFLOW, "run", "--config", str(programme.config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

    def sent(kind: str) -> list:  # type: ignore[type-arg]
        return of(programme.outbox(), kind)

    def reloads() -> int:
        return log_path.read_text().count("rules and templates reloaded")

    try:
        # The daemon has loaded its rules once it has a checked copy (the lock comes earlier).
        assert wait_until(lambda: (programme.root / "var" / "programme" / "current").exists())
        # A valid edit takes effect: teen requests now go to Marcus only.
        edit(rules, TEEN_POOL, ONLY_MARCUS)
        assert wait_until(lambda: reloads() == 1), log_path.read_text()
        programme.request("danielle.jones@example.org", TEEN)
        assert wait_until(lambda: len(sent("ask")) == 1), log_path.read_text()
        assert sent("ask")[0]["To"].addresses[0].addr_spec == "marcus.okafor@example.org"

        # A broken edit is refused: the coordinator is told what to fix, once.
        edit(rules, 'ask_timeout = "2d"', 'ask_timout = "2d"')
        assert wait_until(lambda: len(sent("rules refused")) == 1), log_path.read_text()
        note = sent("rules refused")[0]
        line = next(n for n, text in enumerate(rules.read_text().splitlines(), 1) if "ask_timout" in text)
        assert note["To"].addresses[0].addr_spec == "coordinator@library.org"
        assert (
            f"{rules}:{line}: rule 'Teen services': unknown key 'ask_timout'; did you mean 'ask_timeout'?"
            in text_of(note)
        )
        assert "has NOT used the change" in text_of(note)

        # ... and the last good rules keep working.
        programme.request("pat.lee@example.org", TEEN, name="Pat Lee")
        assert wait_until(lambda: len(sent("ask")) == 2), log_path.read_text()
        assert sent("ask")[1]["To"].addresses[0].addr_spec == "marcus.okafor@example.org"
        assert len(sent("rules refused")) == 1

        # Fixed, with a template change in the same save: both go live together.
        edit(rules, 'ask_timout = "2d"', 'ask_timeout = "2d"')
        edit(templates / "acknowledgement.txt", "{% block subject %}", "{% block subject %}Received: ")
        version = LiveFiles(rules.parent, templates, tmp_path / "unused").snapshot().digest
        assert wait_until(lambda: f"reloaded (version {version})" in log_path.read_text())
        programme.request("sam.ortiz@example.org", TEEN, name="Sam Ortiz")
        assert wait_until(lambda: len(sent("acknowledgement")) == 3), log_path.read_text()
        subjects = [str(m["Subject"]) for m in sent("acknowledgement")]
        assert sum(s.startswith("Received: ") for s in subjects) == 1
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
