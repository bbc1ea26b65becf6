"""`mailflow status`: every request and its state, or one request's history with reasons."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .durations import format_duration
from .errors import MailflowError
from .model import OPEN_STATES, Booking, Request, State
from .render import local_time
from .store import Store

# Names a coordinator may give to --state besides the states themselves.
STATE_GROUPS = {
    "open": {s.value for s in OPEN_STATES},
    "finished": {State.CLOSED.value, State.CANCELLED.value},
}


def states_named(text: str) -> set[str]:
    """`--state asking,escalated` or `--state open` -> the state names; unknown names are an error."""
    wanted: set[str] = set()
    known = [s.value for s in State]
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name in STATE_GROUPS:
            wanted |= STATE_GROUPS[name]
        elif name in known:
            wanted.add(name)
        else:
            raise MailflowError(
                f"no state called {name!r}; use any of {', '.join(known)}, or 'open' / 'finished' "
                "(several with commas)"
            )
    return wanted


def request_row(request: Request, now: datetime, zone: str = "UTC") -> dict[str, Any]:
    mentor = (
        request.mentor.email
        if request.mentor
        else (request.current_ask.mentor + " (asked)" if request.current_ask else "")
    )
    timer = request.timer
    return {
        "ref": request.ref,
        "state": request.state.value,
        "age": format_duration(max(now - request.created, timedelta(0))),
        "protege": request.protege.email,
        "topic": request.form.topic or "",
        "mentor": mentor,
        "next": timer.kind.value if timer else "",
        "due": timer.due.isoformat() if timer else "",
        "due_local": local_time(timer.due, zone, "%a %d %b %H:%M") if timer else "",
        "due_in": format_duration(timer.due - now) if timer and timer.due > now else ("now" if timer else ""),
    }


def all_requests(store: Store, *, include_archived: bool = True) -> list[Request]:
    requests = store.open_requests()
    if include_archived:
        requests.extend(store.archived())
    return sorted(requests, key=lambda r: r.created)


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No requests yet."
    columns = [
        ("ref", "REF"),
        ("state", "STATE"),
        ("age", "AGE"),
        ("protege", "PROTÉGÉ"),
        ("mentor", "MENTOR"),
        ("next", "NEXT"),
        ("due_local", "WHEN"),
        ("due_in", "IN"),
    ]
    widths = {key: max(len(title), *(len(str(row[key])) for row in rows)) for key, title in columns}
    lines = ["  ".join(title.ljust(widths[key]) for key, title in columns)]
    for row in rows:
        lines.append("  ".join(str(row[key]).ljust(widths[key]) for key, _ in columns))
    return "\n".join(line.rstrip() for line in lines)


def history(request: Request) -> str:
    form = request.form
    lines = [
        f"{request.ref}  {request.state.value}",
        f"  protégé: {request.protege.display()}",
        f"  topic:   {form.topic or '-'}",
        f"  budget:  {form.budget.describe() if form.budget else form.budget_text or '-'}"
        + (
            f" (agreed: {request.agreed.describe()})"
            if request.agreed and request.agreed != form.budget
            else ""
        ),
    ]
    if request.mentor:
        lines.append(f"  mentor:  {request.mentor.display()}")
    if request.decision:
        decision = request.decision
        lines.append(
            f"  rule:    {decision.rule or '(none matched)'}"
            + (f" ({decision.rule_file})" if decision.rule_file else "")
        )
        for skipped in decision.skipped_rules:
            lines.append(f"    skipped rule {skipped}")
        for rank, candidate in enumerate(decision.ranked, start=1):
            lines.append(
                f"    candidate {rank}: {candidate.name} <{candidate.email}>: " + "; ".join(candidate.reasons)
            )
        if decision.also_qualified:
            lines.append(
                f"    also qualified, ranked below the first {decision.policy.max_candidates} "
                f"(max_candidates): " + ", ".join(decision.also_qualified)
            )
        for rejected in decision.rejected:
            lines.append(f"    not asked: {rejected.name} <{rejected.email}>: {rejected.reason}")
    if request.asks:
        lines.append("  asks:")
        for ask in request.asks:
            outcome = ask.outcome or f"waiting, until {ask.due:%Y-%m-%d %H:%M} UTC"
            lines.append(
                f"    {ask.asked_at:%Y-%m-%d %H:%M}  {ask.mentor}: {outcome}"
                + (f" ({ask.reason})" if ask.reason else "")
            )
    for booking in request.bookings:
        lines.append("  session: " + session_line(request, booking))
    for booking in request.withdrawn:
        lines.append("  withdrawn session: " + session_line(request, booking))
    if request.timer:
        lines.append(f"  next:    {request.timer.kind.value} at {request.timer.due:%Y-%m-%d %H:%M} UTC")
    lines.append("  history:")
    for event in request.history:
        lines.append(
            f"    {event.at:%Y-%m-%d %H:%M}  {event.what}" + (f": {event.reason}" if event.reason else "")
        )
    for role, reflection in request.reflections.items():
        lines.append(f"  reflection from the {role}:")
        for line in reflection.text.splitlines():
            lines.append(f"    | {line}")
    return "\n".join(lines)


def session_line(request: Request, booking: Booking) -> str:
    """`call 2026-12-08 23:00-23:45 UTC, confirmed, sequence 1, RSVP: protégé ACCEPTED, mentor no answer`."""
    who = {ask.mentor: f"mentor {ask.mentor}" for ask in request.asks}  # a mentor who left
    who[request.protege.email] = "protégé"
    if request.mentor:
        who[request.mentor.email] = "mentor"
    answers = [f"{who.get(address, address)} {answer}" for address, answer in booking.rsvp.items()]
    if booking.status == "confirmed":
        current = [request.protege.email] + ([request.mentor.email] if request.mentor else [])
        answers += [f"{who[address]} no answer" for address in current if address not in booking.rsvp]
    rsvp = f", RSVP: {', '.join(answers)}" if answers else ""
    return (
        f"{booking.kind} {booking.start:%Y-%m-%d %H:%M}-{booking.end:%H:%M} UTC, {booking.status}, "
        f"sequence {booking.sequence}, UID {booking.uid}{rsvp}"
    )


def log_lines(entries: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {e['at'][:16].replace('T', ' ')}  {e['what']}: {e['reason']}" for e in entries)
