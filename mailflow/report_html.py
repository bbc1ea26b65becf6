"""The report as one HTML page a library director can open, print or forward.

Everything is in the one file: styles inline, charts as SVG (charts.py), no scripts,
no fonts or images to fetch. Every chart has a table beside it with the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from . import charts
from .render import local_time
from .report import Report, days, median, percent

STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; color: #1d1d1d; margin: 2em auto; max-width: 60em;
       padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.9em; margin-bottom: 0.1em; }
h2 { font-size: 1.35em; margin-top: 2.2em; border-bottom: 2px solid #0072B2; padding-bottom: 0.2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
.period { color: #555; margin-top: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; margin: 1.5em 0; }
.figure { flex: 1 1 10em; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em;
          background: #fafafa; }
.figure b { display: block; font-size: 2em; font-family: Helvetica, Arial, sans-serif; color: #0072B2; }
table { border-collapse: collapse; margin: 0.8em 0; font-family: Helvetica, Arial, sans-serif;
        font-size: 0.85em; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
blockquote { margin: 0.4em 0 1.2em 0; padding: 0.5em 1em; border-left: 4px solid #E69F00; background: #fffaf0;
             white-space: pre-wrap; }
.who { font-family: Helvetica, Arial, sans-serif; font-size: 0.85em; color: #555; }
.notes { font-size: 0.85em; color: #555; margin-top: 3em; }
svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; } h2 { break-after: avoid; }
               .figure, svg, blockquote { break-inside: avoid; } }
"""


def render_html(report: Report) -> str:
    period = f"{report.since:%d %B %Y} to {report.until:%d %B %Y}"
    introduced = report.introduced
    answered, asked = report.reflection_rate()
    to_intro = median(report.times("to_introduction"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.programme)}: report {escape(period)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.programme)}</h1>",
        f'<p class="period">Micro mentoring report, requests received {escape(period)}. '
        f"Made {escape(local_time(report.generated, report.zone, '%d %B %Y, %H:%M'))}.</p>",
        '<div class="figures">',
        _figure(str(len(report.requests)), "requests received"),
        _figure(
            str(len(introduced)), f"introduced to a mentor ({percent(len(introduced), len(report.requests))})"
        ),
        _figure(days(to_intro) if to_intro is not None else "–", "median wait for an introduction"),
        _figure(f"{report.hours_given:g}", "hours of mentoring given"),
        _figure(percent(answered, asked), f"reflections answered ({answered} of {asked})"),
        "</div>",
    ]
    parts += _requests_section(report)
    parts += _waits_section(report)
    parts += _mentors_section(report)
    parts += _reflections_section(report)
    parts += _all_requests(report)
    parts += [
        '<div class="notes"><p>How to read this report. Requests are counted in the period by the day they '
        "arrived; everything about a request counts with it. <em>Topic area</em> is the rule in "
        "rules/ that matched the request. <em>Matched</em> is when the first mentor was asked; "
        "<em>introduced</em> is when a mentor accepted and both received the introduction. Accept, "
        "decline and time-out rates are shares of the asks a mentor answered or let time out; asks "
        "withdrawn because the request changed or was cancelled are not counted. <em>Capacity</em> is "
        "the mentor's max_hours_per_month over the months in the period. Made by mailflow.</p></div>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _figure(value: str, label: str) -> str:
    return f'<div class="figure"><b>{escape(value)}</b>{escape(label)}</div>'


def _table(headings: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(str(cell))}</td>' if i in numeric else f"<td>{escape(str(cell))}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _requests_section(report: Report) -> list[str]:
    out = ["<h2>Requests</h2>"]
    for title, counts in (
        ("By state", report.by_state()),
        ("By topic area", report.count_by("area")),
        ("By format", report.count_by("format")),
    ):
        out += [
            f"<h3>{escape(title)}</h3>",
            '<div class="pair">',
            charts.bars([(k, float(v)) for k, v in counts], title=f"Requests {title.lower()}"),
            _table([title.removeprefix("By ").capitalize(), "Requests"], counts, numeric=[1]),
            "</div>",
        ]
    return out


BUCKETS = [
    ("under a day", timedelta(days=1)),
    ("1 to 2 days", timedelta(days=2)),
    ("2 to 4 days", timedelta(days=4)),
    ("4 to 7 days", timedelta(days=7)),
    ("a week or more", timedelta.max),
]


def _waits_section(report: Report) -> list[str]:
    out = ["<h2>How long people waited</h2>"]
    summary = []
    for label, key in (
        ("to be matched (first mentor asked)", "to_match"),
        ("to be introduced", "to_introduction"),
    ):
        values = report.times(key)
        middle = median(values)
        summary.append(
            [
                label.capitalize(),
                len(values),
                days(middle) if middle is not None else "–",
                days(sum(values, timedelta()) / len(values)) if values else "–",
                days(max(values)) if values else "–",
            ]
        )
    out.append(_table(["From the request", "Requests", "Median", "Average", "Longest"], summary, numeric=[1]))
    waits = report.times("to_introduction")
    counts = []
    lower = timedelta(0)
    for label, upper in BUCKETS:
        counts.append((label, float(sum(1 for w in waits if lower <= w < upper))))
        lower = upper
    out.append(charts.bars(counts, title="Requests by wait for an introduction", color=charts.ORANGE))
    return out


def _mentors_section(report: Report) -> list[str]:
    mentors = [m for m in report.mentors if m.asked or m.minutes_given or m.minutes_booked]
    out = ["<h2>Mentors</h2>", "<h3>How mentors answered</h3>"]
    out.append(
        charts.stacked(
            [(m.name, [m.accepted, m.declined, m.timed_out]) for m in mentors if m.answered],
            [("accepted", charts.GREEN), ("declined", charts.VERMILION), ("timed out", charts.GREY)],
            title="Answers to asks, per mentor",
        )
    )
    rows = [
        [
            m.name,
            m.asked,
            m.accepted,
            m.declined,
            m.timed_out,
            m.withdrawn + m.waiting,
            _rate(m.rate(m.accepted)),
            _rate(m.rate(m.declined)),
            _rate(m.rate(m.timed_out)),
        ]
        for m in mentors
    ]
    out.append(
        _table(
            [
                "Mentor",
                "Asked",
                "Accepted",
                "Declined",
                "Timed out",
                "Withdrawn or waiting",
                "Accept",
                "Decline",
                "Time-out",
            ],
            rows,
            numeric=range(1, 9),
        )
    )
    out.append("<h3>Hours given against capacity</h3>")
    with_capacity = [m for m in report.mentors if m.max_hours_per_month is not None]
    out.append(
        charts.against_limit(
            [(m.name, m.minutes_given / 60, m.minutes_booked / 60, m.capacity_hours) for m in with_capacity],
            title="Hours given and booked per mentor, against capacity",
        )
    )
    out.append(
        _table(
            ["Mentor", "Hours given", "Hours booked", "Capacity (hours)", "Used"],
            [
                [
                    m.name,
                    f"{m.minutes_given / 60:g}",
                    f"{m.minutes_booked / 60:g}",
                    f"{m.capacity_hours:.1f}",
                    f"{100 * (m.minutes_given + m.minutes_booked) / 60 / m.capacity_hours:.0f}%"
                    if m.capacity_hours
                    else "–",
                ]
                for m in with_capacity
            ],
            numeric=range(1, 5),
        )
    )
    return out


def _reflections_section(report: Report) -> list[str]:
    out = ["<h2>Reflections</h2>"]
    rows = []
    for label, role in (("Protégés", "protege"), ("Mentors", "mentor"), ("Everyone", None)):
        answered, asked = report.reflection_rate(role)
        rows.append([label, asked, answered, percent(answered, asked)])
    out.append(_table(["", "Asked", "Answered", "Response rate"], rows, numeric=[1, 2, 3]))
    if not report.reflections:
        out.append("<p>No reflections were received for these requests.</p>")
    for item in report.reflections:
        role = "protégé" if item.role == "protege" else "mentor"
        out.append(
            f'<p class="who">{escape(item.ref)}, “{escape(item.topic)}”: the {role}, '
            f"{escape(item.name)}, on {escape(_day(item.received, report.zone, '%d %B %Y'))}</p>"
            f"<blockquote>{escape(item.text)}</blockquote>"
        )
    return out


def _all_requests(report: Report) -> list[str]:
    rows = [
        [
            r.ref,
            _day(r.received, report.zone, "%Y-%m-%d"),
            r.topic,
            r.area,
            r.format,
            r.state,
            r.mentor_name or "–",
            days(r.to_introduction) if r.to_introduction is not None else "–",
        ]
        for r in report.requests
    ]
    return [
        "<h2>Every request</h2>",
        _table(
            ["Ref", "Received", "Topic", "Topic area", "Format", "State", "Mentor", "Introduced after"], rows
        ),
    ]


def _day(when: datetime, zone: str, fmt: str) -> str:
    return when.astimezone(ZoneInfo(zone)).strftime(fmt)


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"
