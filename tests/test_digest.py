"""The weekly digest: due once a week at the configured time, sent once, through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailflow.config import DigestSettings, load_config
from mailflow.digest import build_digest, slot_due
from mailflow.directory import DIRECTORY_FILE, load_directory
from mailflow.match import Load

from .programme import Programme, of, only, ref_of, text_of
from .test_workflow import TEEN

MONDAY_8AM = DigestSettings(weekday="monday", time="08:00")
CHICAGO = "America/Chicago"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("last", "now", "slot", "action"),
    [
        (None, "2026-12-01T15:00+00:00", "2026-11-30T14:00+00:00", "record"),  # a new state: no digest yet
        ("2026-11-30T14:00+00:00", "2026-12-07T13:59+00:00", "2026-11-30T14:00+00:00", "wait"),  # 07:59 CST
        ("2026-11-30T14:00+00:00", "2026-12-07T14:00+00:00", "2026-12-07T14:00+00:00", "send"),  # 08:00 CST
        ("2026-12-07T14:00+00:00", "2026-12-10T09:00+00:00", "2026-12-07T14:00+00:00", "wait"),  # sent
        (
            "2026-11-30T14:00+00:00",
            "2026-12-29T09:00+00:00",
            "2026-12-28T14:00+00:00",
            "send",
        ),  # weeks missed: one
        ("2026-05-25T13:00+00:00", "2026-06-01T13:00+00:00", "2026-06-01T13:00+00:00", "send"),  # 08:00 CDT
        (
            "2026-10-26T13:00+00:00",
            "2026-11-02T14:00+00:00",
            "2026-11-02T14:00+00:00",
            "send",
        ),  # after DST ends
    ],
)
def test_the_digest_is_due_once_a_week_at_the_local_time(
    last: str | None, now: str, slot: str, action: str
) -> None:
    last_sent = at(last).isoformat() if last else None
    assert slot_due(last_sent, MONDAY_8AM, CHICAGO, at(now)) == (at(slot), action)


def enable_digest(programme: Programme, extra: str = "") -> None:
    config = programme.config_path.read_text()
    programme.config_path.write_text(config.replace("enabled = false", "enabled = true\n" + extra))


def test_the_daemon_mails_the_digest_once_with_what_needs_attention(programme: Programme) -> None:
    enable_digest(programme, 'near_capacity = 0.5\nstuck_after = "3d"\n')
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")  # Violeta is asked
    programme.request(
        "kim.ross@example.org", "Topic: storytime for toddlers\n", name="Kim Ross"
    )  # incomplete
    programme.request(
        "lee.park@example.org",  # shadowing nobody offers in person: escalated
        "Topic: running a library board meeting\nTime budget: 1 hour\nFormat: phone\n"
        "Skills: library leadership\nPrior relationship: required\n",
        name="Lee Park",
    )
    programme.run()  # Tuesday 1 December: the first run only notes the schedule
    sent = programme.new()
    assert of(sent, "digest") == []
    incomplete = ref_of(only(sent, "completion request"))
    escalated = ref_of(only(sent, "escalation"))

    programme.run("2026-12-07T13:55:00+00:00")  # Monday 07:55 in Chicago: not yet
    assert of(programme.new(), "digest") == []
    programme.run("2026-12-07T14:05:00+00:00")  # 08:05: due
    digest = only(programme.new(), "digest", to="coordinator@library.org")
    text = text_of(digest)
    assert str(digest["Subject"]) == "Library Micro Mentoring: the week to Monday 07 December 2026"
    assert "Monday 30 November 2026 to Monday 07 December 2026" in text
    assert f"  - {escalated} (5d 23h 5m old) running a library board meeting, from Lee Park <lee.park" in text
    assert (
        f"  - {incomplete} (incomplete) storytime for toddlers: waiting 5d 23h 5m for the protégé to "
        "complete the request"
    ) in text
    assert "  - Marcus Okafor: 0.75 of 3 hours, 1 of 2 requests in hand" in text  # Violeta timed out
    assert "  Asks timed out:                    1" in text
    assert "  New requests:                      3" in text
    assert "  Escalated to you:                  1" in text
    assert digest["Reply-To"] is None and digest["Auto-Submitted"] == "auto-generated"

    programme.run("2026-12-07T14:05:00+00:00")  # the same pass again (a restart): not twice
    programme.run("2026-12-10T09:00:00+00:00")
    assert of(programme.new(), "digest") == []
    programme.run("2026-12-29T09:00:00+00:00")  # three Mondays later: one digest, not three
    (late,) = of(programme.new(), "digest")
    assert "the week to Monday 28 December 2026" in str(late["Subject"])


def test_a_timer_that_did_not_fire_shows_as_stuck(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()
    request = programme.request_of(ref_of(only(programme.new(), "ask")))
    assert request.timer is not None
    mentors, _ = load_directory(programme.root / "rules" / DIRECTORY_FILE)
    config = load_config(programme.config_path)
    late = request.timer.due + timedelta(hours=5)  # the daemon was not running
    digest = build_digest([request], mentors, {"violeta.garza@example.org": Load(45, 2)}, config, late, late)
    (stuck,) = digest.stuck
    assert stuck["ref"] == request.ref and stuck["state"] == "asking"
    assert stuck["why"] == (
        "its ask_timeout timer was due 5h ago and has not fired: is `mailflow run` running? Its log says why"
    )
    (violeta,) = digest.mentors  # 2 of 2 requests in hand: full
    assert (violeta["name"], violeta["active"], violeta["full"]) == ("Violeta Garza", 2, True)


def test_the_digest_command_previews_without_sending(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()
    programme.new()
    state = (programme.root / "var" / "state.json").read_bytes()
    out = programme.cli("digest", "--now", "2026-12-02T12:00:00+00:00")
    assert out.startswith(
        "To: coordinator@library.org  (mailflow run sends it never: [digest] enabled = false)\n"
        "Subject: Library Micro Mentoring: the week to Wednesday 02 December 2026\n"
    )
    assert "  New requests:                      1" in out
    assert "  Mentors asked:                     1" in out
    assert (programme.root / "var" / "state.json").read_bytes() == state
    assert programme.new() == []
