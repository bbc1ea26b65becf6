"""`mailflow status`: the table, the filter, one request's history, and --json on both."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mailflow.cli import main

from .programme import Programme, only, ref_of
from .test_workflow import TEEN

LATER = "2026-12-01T16:00:00+00:00"


def two_requests(programme: Programme) -> tuple[str, str]:
    """One request asking Violeta, one waiting for the protégé to complete it."""
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.request("kim.ross@example.org", "Topic: storytime for toddlers\n", name="Kim Ross")
    programme.run()
    sent = programme.new()
    return ref_of(only(sent, "ask")), ref_of(only(sent, "completion request"))


def test_the_table_has_every_column_and_the_timer_in_local_time(programme: Programme) -> None:
    asking, incomplete = two_requests(programme)
    lines = programme.cli("status", "--now", LATER).splitlines()
    assert lines[0].split() == ["REF", "STATE", "AGE", "PROTÉGÉ", "MENTOR", "NEXT", "WHEN", "IN"]
    row = next(line for line in lines if line.startswith(asking))
    # asked at 15:00 UTC, the teen rule's ask_timeout is 2d: due Thu 03 Dec 15:00 UTC = 09:00 CST
    assert row.split() == [
        asking, "asking", "1h", "danielle.jones@example.org", "violeta.garza@example.org",
        "(asked)", "ask_timeout", "Thu", "03", "Dec", "09:00", "CST", "1d", "23h",
    ]  # fmt: skip
    assert next(line for line in lines if line.startswith(incomplete)).split()[:4] == [
        incomplete, "incomplete", "1h", "kim.ross@example.org",
    ]  # fmt: skip


def test_the_table_is_filtered_by_state(programme: Programme) -> None:
    asking, incomplete = two_requests(programme)
    only_incomplete = programme.cli("status", "--state", "incomplete")
    assert incomplete in only_incomplete and asking not in only_incomplete
    both = programme.cli("status", "--state", "asking,incomplete")
    assert asking in both and incomplete in both
    assert asking in programme.cli("status", "--state", "open")
    assert "No request is finished." in programme.cli("status", "--state", "finished")
    wrong = CliRunner().invoke(main, ["status", "--state", "waiting", "--config", str(programme.config_path)])
    assert wrong.exit_code == 2
    assert "no state called 'waiting'; use any of received, incomplete, asking" in wrong.output


def test_json_rows_follow_the_filter(programme: Programme) -> None:
    asking, _ = two_requests(programme)
    data = json.loads(programme.cli("status", "--json", "--state", "asking", "--now", LATER))
    (row,) = data["requests"]
    assert row["ref"] == asking and row["state"] == "asking"
    assert row["mentor"] == "violeta.garza@example.org (asked)"
    assert row["next"] == "ask_timeout" and row["due"] == "2026-12-03T15:00:00+00:00"
    assert row["due_local"] == "Thu 03 Dec 09:00 CST" and row["due_in"] == "1d 23h"
    assert row["topic"] == "Launching a teen advisory council"


def test_one_request_history_with_reasons_as_text_and_json(programme: Programme) -> None:
    asking, _ = two_requests(programme)
    ask = only(programme.outbox(), "ask")
    programme.answer(ask, "Decline - away at a conference, sorry.")
    programme.run(LATER)
    history = programme.cli("status", asking.lower())  # references are not case-sensitive
    assert history.startswith(f"{asking}  asking")
    assert "  rule:    Teen services (" in history
    assert "    candidate 1: Marcus Okafor <marcus.okafor@example.org>: " in history
    assert (
        "    not asked: Violeta Garza <violeta.garza@example.org>: already asked for this request "
        "(declined: away at a conference, sorry)"
    ) in history
    assert (
        "  asks:\n    2026-12-01 15:00  violeta.garza@example.org: declined (away at a conference, sorry)"
        in history
    )
    assert "    2026-12-01 16:00  marcus.okafor@example.org: waiting, until 2026-12-03 16:00 UTC" in history
    assert (
        "    2026-12-01 16:00  mentor declined: violeta.garza@example.org: away at a conference, sorry"
        in history
    )
    data = json.loads(programme.cli("status", asking, "--json"))
    assert data["ref"] == asking and data["state"] == "asking"
    assert [a["outcome"] for a in data["asks"]] == ["declined", None]
    assert data["decision"]["rule"] == "Teen services"
    missing = CliRunner().invoke(main, ["status", "MM-ZZZZZ", "--config", str(programme.config_path)])
    assert missing.exit_code == 2 and "no request MM-ZZZZZ in" in missing.output
