"""`mailflow simulate`: the example requests explained, nothing sent or saved; `--replay`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailflow.cli import main

from .programme import REPO, Programme, request_mail
from .test_reload import ONLY_MARCUS, TEEN_POOL, edit
from .test_workflow import TEEN

NOW = "2026-12-01T15:00:00+00:00"  # a Tuesday


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The project's own rules and templates, and a state that does not exist yet."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""[programme]
name = "Library Micro Mentoring"
address = "mentoring@library.org"
coordinator = "coordinator@library.org"
time_zone = "America/Chicago"

[paths]
rules = "{REPO / "rules"}"
templates = "{REPO / "templates"}"
state = "var/state.json"
"""
    )
    return path


def simulate(config: Path, *args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(main, ["simulate", *args, "--config", str(config)])
    assert result.exit_code == exit_code, result.output
    return result.output


# example -> lines the explanation must hold (each a whole line, or the start of one)
EXPLAINED = {
    "teen-advisory-council.eml": [
        "  Read as:  a new request",
        "  Topic:              Launching a teen advisory council",
        "  Time budget:        one 45-minute conversation (45 minutes in all; written 'one 45-minute "
        "conversation')",
        "  Availability:       'Tue/Thu 2-5pm', read as Tue/Thu 14:00-17:00",
        "  Prior relationship: preferred",
        "  no          Spanish-language requests (",
        "  MATCHED     Teen services (",
        "  not reached Everything else (",
        "  1. Violeta Garza <violeta.garza@example.org>: has worked with the protégé before; skills "
        "matching the request: teen services, teen advisory council, youth development; 0h of 4h "
        "booked this month, 0 active",
        "     invite if they accept now: call, 45 minutes, Tuesday 08 December 2026, 15:00 PST for the "
        "protégé = Tue 15:00 PST for the mentor",
        "  2. Marcus Okafor <marcus.okafor@example.org>: skills matching the request: teen services, "
        "youth development; 0h of 3h booked this month, 0 active",
        "     invite if they accept now: call, 45 minutes, Thursday 03 December 2026, 14:00 PST for the "
        "protégé = Thu 16:00 CST for the mentor",
        "  - Aiko Tanaka <aiko.tanaka@example.org>: has none of the skills of rule 'Teen services' "
        "(teen services, youth development)",
        "  - acknowledgement to danielle.jones@example.org",
        "  - ask to violeta.garza@example.org",
        "Outcome: asking: violeta.garza@example.org would be asked first, and have until 2026-12-03 "
        "15:00 UTC to answer",
    ],
    "incomplete-storytime.eml": [
        "  Time budget:        not given",
        "  - Time budget: missing: say how much time you are asking for, like '45 minutes' or '2 x 30 "
        "minutes over 2 weeks'",
        "  - completion request to kevin.obrien@example.org",
        "Outcome: incomplete: missing or unclear: Time budget",
    ],
    "over-budget-leadership.eml": [
        "  - Time budget: 4 x 2-hour conversations over 8 weeks adds up to 480 minutes, more than this "
        "programme's limit of 360 minutes; please ask for less time",
        "Outcome: incomplete: missing or unclear: Time budget",
    ],
    "shadowing-board-meeting.eml": [
        "  MATCHED     Shadowing a leader (",
        "  - Aiko Tanaka <aiko.tanaka@example.org>: does not offer 'shadowing' (offers video, phone)",
        "     invite if they accept now: session 1 of 2, shadowing, 120 minutes, Thursday 03 December "
        "2026, 11:00 MST for the protégé = Thu 13:00 EST for the mentor",
        "     invite if they accept now: session 2 of 2, debrief, 30 minutes, Tuesday 08 December 2026, "
        "08:00 MST for the protégé = Tue 10:00 EST for the mentor",
        "Outcome: asking: samuel.bright@example.org would be asked first, and have until 2026-12-03 "
        "15:00 UTC to answer",
    ],
    "spanish-bilingual-storytime.eml": [
        "  Language:           es",
        "  MATCHED     Spanish-language requests (",
        "  1. Lucía Fernández <lucia.fernandez@example.org>: speaks 'es'; skills matching the request: "
        "bilingual programming, storytime; 0h of 4h booked this month, 0 active",
        "  - ask to lucia.fernandez@example.org",
    ],
    "prior-relationship-required.eml": [
        "  Prior relationship: required",
        "  MATCHED     Money and boards (",
        "  - Aiko Tanaka <aiko.tanaka@example.org>: has no prior relationship with the protégé, which "
        "the request requires",
        "  - ask to samuel.bright@example.org",
    ],
    "html-only-grant-writing.eml": [
        "  MATCHED     Money and boards (",
        "  no          Makerspaces and technology (",
        "  - ask to aiko.tanaka@example.org",
    ],
    "digital-literacy-teams.eml": [
        "  MATCHED     Makerspaces and technology (",
        "  - ask to tom.whitfield@example.org",
    ],
    "preferred-mentor-outreach.eml": [
        "  MATCHED     Everything else (",
        "  1. Amara Nwosu <amara.nwosu@example.org>: named by the protégé as preferred mentor",
        "  - ask to amara.nwosu@example.org",
    ],
    "two-sessions-makerspace.eml": [
        "  MATCHED     Makerspaces and technology (",
        "     invite if they accept now: session 1 of 2, call, 30 minutes, Thursday 03 December 2026, "
        "16:00 CST for the protégé = Thu 16:00 CST for the mentor",
        "     invite if they accept now: session 2 of 2, call, 30 minutes, Thursday 10 December 2026, "
        "16:00 CST for the protégé = Thu 16:00 CST for the mentor",
    ],
}


def test_every_example_is_explained() -> None:
    assert set(EXPLAINED) == {p.name for p in (REPO / "examples").glob("*.eml")}


@pytest.mark.parametrize("example", sorted(EXPLAINED))
def test_simulate_explains_an_example_and_changes_nothing(config: Path, tmp_path: Path, example: str) -> None:
    out = simulate(config, str(REPO / "examples" / example), "--now", NOW)
    assert out.startswith(f"Simulation of {REPO / 'examples' / example} at 2026-12-01 15:00 UTC")
    lines = out.splitlines()
    for expected in EXPLAINED[example]:
        assert any(line.startswith(expected) for line in lines), f"{expected!r} not in:\n{out}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no state, no secret, no mail


def test_simulate_reads_the_state_without_changing_it(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()  # Violeta is asked: one request in hand, 45 minutes this month
    state = programme.root / "var" / "state.json"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    outbox = sorted(p.name for p in (programme.root / "outbox" / "new").iterdir())
    eml = programme.root / "another.eml"
    eml.write_bytes(request_mail("pat.lee@example.org", TEEN, name="Pat Lee"))
    out = simulate(programme.config_path, str(eml), "--now", NOW)
    assert (
        "  1. Violeta Garza <violeta.garza@example.org>: skills matching the request: teen services, " in out
    )
    assert "0.75h of 4h booked this month, 1 active" in out
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in (programme.root / "outbox" / "new").iterdir()) == outbox
    assert programme.inbox_waiting() == 0


def test_simulate_says_what_is_not_a_request(config: Path, tmp_path: Path) -> None:
    eml = tmp_path / "auto.eml"
    eml.write_bytes(
        request_mail(
            "danielle.jones@example.org",
            "I am out of the office.",
            headers={"Auto-Submitted": "auto-replied"},
        )
    )
    out = simulate(config, str(eml), "--now", NOW)
    assert "  Read as:  not a request, never answered: " in out
    assert "Outcome: filed in processed, nothing sent" in out


def test_simulate_refuses_broken_rules_and_needs_a_file_or_replay(
    programme: Programme, tmp_path: Path
) -> None:
    edit(programme.root / "rules" / "rules.toml", 'ask_timeout = "2d"', 'ask_timout = "2d"')
    eml = REPO / "examples" / "teen-advisory-council.eml"
    result = CliRunner().invoke(main, ["simulate", str(eml), "--config", str(programme.config_path)])
    assert result.exit_code == 1
    assert "unknown key 'ask_timout'; did you mean 'ask_timeout'?" in result.output
    assert "fix them first (mailflow check)" in result.output
    neither = CliRunner().invoke(main, ["simulate", "--config", str(programme.config_path)])
    assert neither.exit_code == 2 and "give either an .eml file or --replay N" in neither.output


def test_replay_lists_the_requests_an_edit_would_change(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.request(
        "pat.lee@example.org", TEEN.replace("teen advisory council", "grant for the makerspace")
    )
    programme.request("kim.ross@example.org", "Topic: storytime\nTime budget: 30 minutes\n")
    programme.run()
    unchanged = simulate(programme.config_path, "--replay", "10")
    assert unchanged.startswith("Replayed the last 3 request(s) with the rules now in ")
    assert ": 0 would be matched differently." in unchanged
    assert "3 unchanged; 0 never reached matching" in unchanged

    edit(programme.root / "rules" / "rules.toml", TEEN_POOL, ONLY_MARCUS)
    state = programme.root / "var" / "state.json"
    before = state.read_bytes()
    out = simulate(programme.config_path, "--replay", "10")
    assert ": 2 would be matched differently." in out
    danielle = out.split("danielle.jones@example.org\n")[1].splitlines()
    assert danielle[0] == "  was: rule 'Teen services': Violeta Garza, Marcus Okafor, Tomás Reyes"
    assert danielle[1] == "  now: rule 'Teen services': Marcus Okafor"
    assert '"Launching a teen advisory council" from danielle.jones@example.org' in out
    assert "kim.ross@example.org" not in out  # storytime: another rule, unchanged
    assert "1 unchanged" in out
    assert state.read_bytes() == before
    # --replay N takes the last N by arrival
    assert "Replayed the last 1 request(s)" in simulate(programme.config_path, "--replay", "1")
