"""`mailflow report`: the HTML report in a real browser, and the CSV tables, from the demo's state."""

from __future__ import annotations

import csv
import io
import re
import struct
from pathlib import Path

from click.testing import CliRunner

from mailflow.cli import main

from .chromium import render
from .programme import Programme
from .test_workflow import TEEN

END = "2026-12-23T18:00:00+00:00"  # the demo is over by then


def report(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["report", "--now", END, *args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def rows(config: Path, table: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(report(config, "--format", "csv", "--table", table))))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_html_report_renders_in_chromium_without_errors(demo_config: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    CliRunner().invoke(main, ["report", "--now", END, "-o", str(page), "--config", str(demo_config)])
    shown = render(page, tmp_path / "report.png")
    assert shown.problems == []
    assert shown.requests == [page.resolve().as_uri()]  # nothing fetched: the page is self-contained
    assert shown.title == "Library Micro Mentoring: report 01 December 2026 to 23 December 2026"
    width, height = png_size(shown.screenshot)
    assert 1000 < width <= 1100 and height == shown.height and height > 3000  # all of it, not one screen
    assert shown.screenshot.stat().st_size > 100_000  # charts and tables, not a blank page


def test_the_browser_check_does_catch_a_broken_page(tmp_path: Path) -> None:
    """The harness itself: a page with a script error and a remote stylesheet is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.example.com/x.css"></head>'
        "<body><h1>Broken</h1><script>console.error('boom'); notDefined();</script></body></html>"
    )
    shown = render(page, tmp_path / "broken.png")
    assert "console.error: boom" in shown.problems
    assert any("notDefined is not defined" in p for p in shown.problems)
    assert "https://cdn.example.com/x.css" in shown.requests
    assert png_size(shown.screenshot)[0] > 1000


def test_the_html_report_is_one_file_with_its_charts_and_figures(demo_config: Path) -> None:
    html = report(demo_config)
    assert html.startswith("<!DOCTYPE html>")
    for outside in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert outside not in html, outside
    assert not re.search(r'href="(?!#)', html)
    assert html.count("<svg") == 6
    for label in (
        "Requests by state",
        "Requests by topic area",
        "Requests by format",
        "Requests by wait for an introduction",
        "Answers to asks, per mentor",
        "Hours given and booked per mentor, against capacity",
    ):
        assert f'aria-label="{label}"' in html
    assert "<b>10</b>requests received" in html
    assert "<b>10.25</b>hours of mentoring given" in html
    assert "<b>94%</b>reflections answered (17 of 18)" in html
    assert '<td>Tom Whitfield</td><td class="n">2</td><td class="n">1</td><td class="n">0</td>' in html
    assert "<blockquote>What worked: concrete examples from a real library" in html
    assert "Reaching neighbours who “don’t do libraries”" in html  # the protégé's own words, escaped safely


def test_the_requests_table_as_csv(demo_config: Path) -> None:
    table = rows(demo_config, "requests")
    assert len(table) == 10
    assert sorted({r["state"] for r in table}) == ["cancelled", "closed"]
    by_protege = {r["protege_email"]: r for r in table}
    timed_out = by_protege["ngozi.adeyemi@example.org"]  # the first mentor never answered
    assert (timed_out["mentors_asked"], timed_out["timed_out"]) == ("2", "1")
    assert float(timed_out["hours_to_introduction"]) > 72  # the rule's ask_timeout is 3 days
    counter = by_protege["beth.morgan@example.org"]  # the mentor counter-offered 45 minutes
    assert (counter["budget_minutes"], counter["agreed_minutes"]) == ("90", "45")
    cancelled = by_protege["sam.patel@example.org"]
    assert (cancelled["state"], cancelled["reflection_asked"]) == ("cancelled", "no")
    spanish = by_protege["mariana.lopez@example.org"]
    assert (spanish["topic_area"], spanish["mentor_email"]) == (
        "Spanish-language requests",
        "lucia.fernandez@example.org",
    )
    assert by_protege["rosa.delgado@example.org"]["reflections_received"] == "protege"


def test_the_mentors_table_as_csv(demo_config: Path) -> None:
    mentors = {r["email"]: r for r in rows(demo_config, "mentors")}
    tom = mentors["tom.whitfield@example.org"]
    columns = ("asked", "accepted", "declined", "timed_out", "accept_rate", "timeout_rate")
    assert [tom[k] for k in columns] == ["2", "1", "0", "1", "0.50", "0.50"]
    marcus = mentors["marcus.okafor@example.org"]  # declined Chris; took Danielle's 45 minutes over
    assert (marcus["declined"], marcus["decline_rate"], marcus["hours_given"]) == ("1", "0.50", "0.75")
    samuel = mentors["samuel.bright@example.org"]  # shadowing (2h) + a budget talk (1h) + debrief
    assert (samuel["hours_given"], samuel["max_hours_per_month"]) == ("3.50", "4")
    assert float(samuel["capacity_hours"]) == round(4 * 23 / (365.25 / 12), 1)  # 23 days of 4h a month


def test_the_reflections_as_csv(demo_config: Path) -> None:
    reflections = rows(demo_config, "reflections")
    assert len(reflections) == 17
    assert sum(r["role"] == "protege" for r in reflections) == 9
    assert reflections[0]["text"].startswith("What worked:")


def test_the_period_chooses_requests_by_the_day_they_arrived(programme: Programme) -> None:
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run("2026-12-01T15:00:00+00:00")
    programme.request("pat.lee@example.org", "Topic: storytime\nTime budget: 30 minutes\n")
    programme.run("2026-12-08T15:00:00+00:00")
    config = programme.config_path
    assert len(rows(config, "requests")) == 2
    early = report(config, "--format", "csv", "--until", "2026-12-05")
    assert "danielle.jones@example.org" in early and "pat.lee@example.org" not in early
    late = report(config, "--format", "csv", "--since", "2026-12-05")
    assert "pat.lee@example.org" in late and "danielle.jones@example.org" not in late
    html = report(config, "--since", "2026-12-08", "--until", "2026-12-08")
    assert "requests received 08 December 2026 to 08 December 2026" in html
    assert "<b>1</b>requests received" in html
    wrong = CliRunner().invoke(main, ["report", "--since", "last week", "--config", str(config)])
    assert wrong.exit_code == 2 and "'last week' does not match the format '%Y-%m-%d'" in wrong.output
