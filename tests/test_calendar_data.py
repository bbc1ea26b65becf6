"""Calendar data on its own: what invite.py writes and reads, free/busy files and URLs,
and which parts of a message count as a calendar answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from icalendar import Calendar

from mailflow.directory import Mentor
from mailflow.errors import CalendarError
from mailflow.freebusy import FreeBusy, describe
from mailflow.invite import Attendee, build_invite, busy_periods, read_itip
from mailflow.mailtext import read_message
from mailflow.rsvp import find_calendar_answer, subject_answer

from .programme import DATA, RSVP, SAMPLE_UID
from .test_slots import mentor

START = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)


def invite(method: str = "REQUEST", name: str = "Danielle Jones") -> Calendar:
    part = build_invite(
        method=method,
        uid="mm-7f3k2-1-1796511600@library.org",
        sequence=2,
        start=START,
        end=START + timedelta(minutes=45),
        stamp=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        summary="Micro mentoring: teens [MM-7F3K2]",
        description="Goal: a plan",
        organizer=Attendee("mentoring@library.org", "Library Micro Mentoring"),
        attendees=[Attendee("danielle.jones@example.org", name), Attendee("violeta.garza@example.org", "V")],
    )
    assert part.method == method
    return Calendar.from_ical(part.data)


def test_a_cancel_asks_for_no_answer_and_says_cancelled() -> None:
    (event,) = invite("CANCEL").walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED" and int(event["SEQUENCE"]) == 2
    for attendee in event["ATTENDEE"]:
        assert "RSVP" not in attendee.params and "PARTSTAT" not in attendee.params


def test_a_name_cannot_break_out_of_its_parameter() -> None:
    (event,) = invite(name='Dani "the\r\nboss"; ROLE=CHAIR').walk("VEVENT")
    danielle = next(a for a in event["ATTENDEE"] if "danielle" in str(a))
    assert danielle.params["CN"] == "Dani 'the boss'; ROLE=CHAIR"
    assert danielle.params["ROLE"] == "REQ-PARTICIPANT"


def test_only_request_and_cancel_are_sent() -> None:
    with pytest.raises(ValueError, match="REQUEST or METHOD:CANCEL"):
        invite("PUBLISH")


def test_reading_an_itip_reply_tolerates_what_clients_write() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nMETHOD:reply\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID: u-1@library.org\r\n"
        b"SEQUENCE:not a number\r\nDTSTAMP:garbage\r\n"
        b'ATTENDEE;PARTSTAT=accepted;EMAIL="Ann@Example.org":urn:uuid:1234\r\n'
        b'ATTENDEE;PARTSTAT=DELEGATED;DELEGATED-TO="mailto:Bo@example.org":MAILTO:Cy@Example.org\r\n'
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    itip = read_itip(data)
    assert itip.method == "REPLY"
    (event,) = itip.events
    assert (event.uid, event.sequence, event.stamp) == ("u-1@library.org", 0, None)
    ann, cy = event.attendees
    assert (ann.email, ann.partstat) == ("ann@example.org", "ACCEPTED")
    assert (cy.email, cy.partstat, cy.delegated_to) == ("cy@example.org", "DELEGATED", ("bo@example.org",))
    with pytest.raises(CalendarError):
        read_itip(b"this is not a calendar")


def test_busy_periods_expand_recurrences_on_their_own_wall_clock() -> None:
    data = (DATA / "rules-calendar" / "busy" / "frank.ics").read_bytes()
    busy = busy_periods(
        data, datetime(2027, 2, 20, tzinfo=UTC), datetime(2027, 3, 20, tzinfo=UTC), "America/New_York"
    )
    starts = [start for start, _ in busy]
    # Tuesdays 13:00 New York until the UNTIL of 2 March: EST (18:00 UTC) only, then nothing.
    assert starts == [datetime(2027, 2, 23, 18, 0, tzinfo=UTC), datetime(2027, 3, 2, 18, 0, tzinfo=UTC)]


def test_busy_periods_read_freebusy_all_day_overrides_and_skip_free_time() -> None:
    data = b"\r\n".join(
        [
            b"BEGIN:VCALENDAR",
            b"VERSION:2.0",
            b"PRODID:test",
            b"BEGIN:VFREEBUSY",
            b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20261208T150000Z/PT1H,20261209T150000Z/20261209T153000Z",
            b"FREEBUSY;FBTYPE=FREE:20261210T150000Z/PT8H",
            b"END:VFREEBUSY",
            b"BEGIN:VEVENT",
            b"UID:weekly",
            b"DTSTART;TZID=America/Los_Angeles:20261201T090000",
            b"DURATION:PT1H",
            b"RRULE:FREQ=WEEKLY;COUNT=4",
            b"EXDATE;TZID=America/Los_Angeles:20261208T090000",
            b"END:VEVENT",
            b"BEGIN:VEVENT",
            b"UID:weekly",
            b"RECURRENCE-ID;TZID=America/Los_Angeles:20261215T090000",
            b"DTSTART;TZID=America/Los_Angeles:20261215T140000",
            b"DURATION:PT1H",
            b"END:VEVENT",
            b"BEGIN:VEVENT",
            b"UID:holiday",
            b"DTSTART;VALUE=DATE:20261224",
            b"END:VEVENT",
            b"BEGIN:VEVENT",
            b"UID:cancelled",
            b"STATUS:CANCELLED",
            b"DTSTART:20261211T150000Z",
            b"DTEND:20261211T160000Z",
            b"END:VEVENT",
            b"END:VCALENDAR",
            b"",
        ]
    )
    busy = busy_periods(
        data, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "America/Los_Angeles"
    )
    assert busy == [
        (datetime(2026, 12, 1, 17, 0, tzinfo=UTC), datetime(2026, 12, 1, 18, 0, tzinfo=UTC)),
        (datetime(2026, 12, 8, 15, 0, tzinfo=UTC), datetime(2026, 12, 8, 16, 0, tzinfo=UTC)),
        (datetime(2026, 12, 9, 15, 0, tzinfo=UTC), datetime(2026, 12, 9, 15, 30, tzinfo=UTC)),
        (datetime(2026, 12, 15, 22, 0, tzinfo=UTC), datetime(2026, 12, 15, 23, 0, tzinfo=UTC)),  # moved
        (datetime(2026, 12, 22, 17, 0, tzinfo=UTC), datetime(2026, 12, 22, 18, 0, tzinfo=UTC)),
        (
            datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
            datetime(2026, 12, 25, 8, 0, tzinfo=UTC),
        ),  # all day, local
    ]


class _Calendar(BaseHTTPRequestHandler):
    body = b""
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # the http.server API
        _Calendar.paths.append(self.path)
        self.send_response(200 if self.body else 404)
        self.send_header("Content-Type", "text/calendar")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def calendar_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Calendar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def with_free_busy(source: str) -> Mentor:
    plain = mentor("America/New_York", "Tue 13:00-17:00")
    return Mentor(**{**plain.__dict__, "free_busy": source})


def test_a_free_busy_url_is_read_over_http_and_never_logged_whole(calendar_server: str) -> None:
    _Calendar.body = (DATA / "rules-calendar" / "busy" / "frank.ics").read_bytes()
    secret = f"http://{calendar_server}/calendar/ical/frank/private-5e3c7a9b/basic.ics"
    busy, problem = FreeBusy(Path(".")).busy(
        with_free_busy(secret), datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC)
    )
    assert problem == ""
    assert busy[0] == (datetime(2026, 12, 1, 18, 0, tzinfo=UTC), datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
    assert _Calendar.paths[-1] == "/calendar/ical/frank/private-5e3c7a9b/basic.ics"
    assert describe(secret) == "http://127.0.0.1/…"
    _Calendar.body = b""
    busy, problem = FreeBusy(Path(".")).busy(
        with_free_busy(secret), datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC)
    )
    assert busy == [] and "HTTP Error 404" in problem and "private-5e3c7a9b" not in problem


def test_the_four_clients_answers_are_found_and_forwarded_or_bounced_ones_are_not() -> None:
    found = {}
    for path in sorted(RSVP.glob("*.eml")):
        answer = find_calendar_answer(read_message(path.read_bytes()))
        assert answer is not None, path.name
        ((rsvp),) = answer.rsvps
        assert rsvp.uid == SAMPLE_UID
        found[path.stem] = (answer.client, rsvp.attendee, rsvp.partstat)
    assert found == {
        "apple-tentative": ("Apple Calendar", "danielle.jones@example.org", "TENTATIVE"),
        "google-accepted": ("Google Calendar", "danielle.jones@example.org", "ACCEPTED"),
        "outlook-accepted": ("Outlook", "violeta.garza@example.org", "ACCEPTED"),
        "thunderbird-declined": ("Thunderbird", "violeta.garza@example.org", "DECLINED"),
    }
    reply = (RSVP / "thunderbird-declined.eml").read_bytes()
    forwarded = EmailMessage()
    forwarded["From"] = "coordinator@library.org"
    forwarded.set_content("FYI")
    forwarded.add_attachment(read_message(reply))  # message/rfc822
    assert find_calendar_answer(read_message(forwarded.as_bytes())) is None
    bounce = EmailMessage()
    bounce.set_content("delivery failed")
    bounce.add_attachment(read_message(reply))
    bounce.replace_header("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')
    assert find_calendar_answer(read_message(bounce.as_bytes())) is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Accepted: Micro mentoring: x [MM-7F3K2]", ("ACCEPTED", "Micro mentoring: x [MM-7F3K2]")),
        ("Tentative: Micro mentoring", ("TENTATIVE", "Micro mentoring")),
        ("Tentatively Accepted: Micro mentoring", ("TENTATIVE", "Micro mentoring")),
        ("Invitation Declined: Micro mentoring", ("DECLINED", "Micro mentoring")),
        ("Declined: Micro mentoring", ("DECLINED", "Micro mentoring")),
        ("RE: Aceptado: Micro mentoring", ("ACCEPTED", "Micro mentoring")),
        ("Re: [MM-7F3K2] Introduction", None),
        ("Accepting the idea: yes", None),
    ],
)
def test_answer_subjects(subject: str, expected: tuple[str, str] | None) -> None:
    assert subject_answer(subject) == expected
