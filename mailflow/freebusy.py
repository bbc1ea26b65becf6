"""A mentor's busy times, from the free/busy calendar the mentor directory names.

    [[mentor]]
    free_busy = "busy/violeta.ics"                              # relative to the rules folder
    free_busy = "https://calendar.example.org/violeta/busy.ics"  # or an http(s) / webcal URL

Outlook ("publish calendar", availability only), Google Calendar ("secret address in
iCal format") and Apple Calendar (a public calendar) all publish such a file; a
VFREEBUSY file (RFC 5545 3.6.4) works as well. It is read every time sessions are
planned (an introduction or a reschedule), so it is as fresh as its publisher keeps it.
A file or URL that cannot be read does not stop the planning: the sessions are planned
without it and the reason is recorded on the request. Published calendar URLs often
hold a secret, so a URL is never written whole to a log or a history line (`describe`).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from .directory import DIRECTORY_FILE, Mentor
from .errors import CalendarError
from .invite import Interval, busy_periods
from .tomlsource import Issue

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
MAX_BYTES = 5 * 1024 * 1024


class FreeBusy:
    """Reads free/busy calendars; `base` is the folder relative paths start from."""

    def __init__(self, base: Path, *, timeout: float = TIMEOUT_SECONDS, max_bytes: int = MAX_BYTES) -> None:
        self.base = base
        self.timeout = timeout
        self.max_bytes = max_bytes

    def busy(self, mentor: Mentor, start: datetime, end: datetime) -> tuple[list[Interval], str]:
        """The mentor's busy intervals between `start` and `end`, and a problem ("" if none)."""
        if not mentor.free_busy:
            return [], ""
        try:
            periods = busy_periods(self.read(mentor.free_busy), start, end, mentor.time_zone)
        except (OSError, CalendarError, ValueError) as error:
            problem = (
                f"the free/busy calendar of {mentor.email} ({describe(mentor.free_busy)}) "
                f"could not be read: {_short(error)}"
            )
            log.warning("%s; planning without it", problem)
            return [], problem
        log.info("%s: %d busy period(s) from %s", mentor.email, len(periods), describe(mentor.free_busy))
        return periods, ""

    def read(self, source: str) -> bytes:
        if "://" not in source:
            path = self.base / source
            if path.stat().st_size > self.max_bytes:
                raise CalendarError(f"larger than {self.max_bytes // 1024} KB")
            return path.read_bytes()
        url = "https://" + source.split("://", 1)[1] if source.lower().startswith("webcal://") else source
        request = urllib.request.Request(url, headers={"User-Agent": "mailflow (free/busy)"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            data = response.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise CalendarError(f"larger than {self.max_bytes // 1024} KB")
        return bytes(data)


def describe(source: str) -> str:
    """A file name as it is; a URL without its path and query, which may hold a secret."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def check_free_busy(mentors: Iterable[Mentor], rules_dir: Path, now: datetime) -> list[Issue]:
    """For `mailflow check`: every free/busy file named in the directory exists and reads.

    URLs are not fetched here (a check must not depend on the network); they are read,
    and any failure recorded, when sessions are planned.
    """
    reader = FreeBusy(rules_dir)
    directory = str(rules_dir / DIRECTORY_FILE)
    issues = []
    for mentor in mentors:
        if not mentor.free_busy or "://" in mentor.free_busy:
            continue
        try:
            busy_periods(reader.read(mentor.free_busy), now, now + timedelta(weeks=8), mentor.time_zone)
        except (OSError, CalendarError, ValueError) as error:
            issues.append(
                Issue(
                    directory,
                    mentor.line,
                    f"{mentor.email}: free_busy {mentor.free_busy!r} cannot be read "
                    f"({_short(error)}); the path is relative to {rules_dir}",
                )
            )
    return issues


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"
