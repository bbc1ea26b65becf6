"""Turning a decision into messages: the template context, rendering and composing.

`Messages.build` is the one place an `Outgoing` is made: it renders the named
template, sets the Reply-To that routes the answer back to the right request and
role, threads it to the message it answers, and records its Message-ID on the
request so replies to it can be found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .compose import Envelope, compose, new_message_id, recipients
from .config import Config
from .directory import Mentor
from .incoming import Incoming
from .invite import CalendarPart
from .model import Outgoing, Person, Request, Role
from .render import Renderer
from .tokens import Tokens

PAIR = "pair"


@dataclass
class Effects:
    """Everything one event decided; the engine applies it only if handling succeeded."""

    saved: dict[str, Request] = field(default_factory=dict)
    outgoing: list[Outgoing] = field(default_factory=list)
    bookings: list[tuple[str, str, datetime, int]] = field(default_factory=list)
    unbook: list[tuple[str, datetime | None]] = field(default_factory=list)
    pairings: list[tuple[str, str, str]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[tuple[str, datetime]] = field(default_factory=list)  # mentor, until
    folder: str = "processed"
    outcome: str = ""

    def save(self, request: Request) -> None:
        self.saved[request.ref] = request


def request_context(request: Request, config: Config) -> dict[str, Any]:
    form = request.form
    budget = request.agreed or form.budget
    return {
        "topic": form.topic or "(no topic given)",
        "budget": budget.describe() if budget else (form.budget_text or "(not given)"),
        "format": form.format or config.programme.default_format,
        "skills": list(form.skills),
        "goal": form.goal or "",
        "questions": list(form.questions),
        "availability": form.availability_text or "",
        "time_zone": form.time_zone or config.programme.time_zone,
        "recording": form.recording,
        "prior_relationship": form.prior_relationship,
        "preferred_mentor": form.preferred_mentor or "",
        "language": form.language,
    }


def person_context(person: Person | Mentor | None) -> dict[str, Any]:
    if person is None:
        return {"name": "", "email": "", "library": ""}
    context = {
        "name": person.name or person.email.split("@")[0],
        "email": person.email,
        "library": person.library,
    }
    if isinstance(person, Mentor):
        context.update(
            video_link=person.video_link,
            location=person.location,
            phone=person.phone,
            time_zone=person.time_zone,
        )
    return context


class Messages:
    def __init__(self, config: Config, renderer: Renderer, tokens: Tokens, loop_token: str) -> None:
        self.config = config
        self.renderer = renderer
        self.tokens = tokens
        self.loop_token = loop_token
        programme = config.programme
        self.sender = Person(programme.address, programme.name)
        self.domain = programme.address.partition("@")[2]

    def base_context(self, request: Request | None) -> dict[str, Any]:
        programme = self.config.programme
        context: dict[str, Any] = {
            "programme": {
                "name": programme.name,
                "address": programme.address,
                "coordinator": programme.coordinator,
            },
            "ref": request.ref if request else "",
        }
        if request is not None:
            context["request"] = request_context(request, self.config)
            context["protege"] = person_context(request.protege)
            context["mentor"] = person_context(request.mentor)
        return context

    def build(
        self,
        *,
        template: str,
        purpose: str,
        to: list[Person],
        now: datetime,
        request: Request | None = None,
        context: dict[str, Any] | None = None,
        reply_role: Role | str | None = None,
        cc: list[Person] | None = None,
        calendars: list[CalendarPart] | None = None,
        answering: Incoming | None = None,
        headers: dict[str, str] | None = None,
    ) -> Outgoing:
        full_context = self.base_context(request)
        full_context.update(context or {})
        # Only a message with an invitation carries an HTML part (compose.py).
        rendered = self.renderer.render(template, full_context, html=bool(calendars))
        reply_to = None
        if request is not None and reply_role == PAIR:
            reply_to = self.tokens.pair_address(request.ref)
        elif request is not None and isinstance(reply_role, Role):
            reply_to = self.tokens.reply_address(request.ref, reply_role, to[0].email)
        # Answers thread to the message answered; everything else to the protégé's request.
        root = request.message_ids[0] if request and request.message_ids else None
        answered = answering.message_id if answering and _sent_by(answering, to) else None
        parent = answered or root
        envelope = Envelope(
            to=to,
            cc=cc or [],
            reply_to=reply_to,
            in_reply_to=parent,
            references=list(dict.fromkeys(p for p in (root, answered) if p)),
            auto="auto-replied" if answered else "auto-generated",
        )
        message_id = new_message_id(self.domain)
        message = compose(
            sender=self.sender,
            envelope=envelope,
            rendered=rendered,
            message_id=message_id,
            date=now,
            loop_token=self.loop_token,
            purpose=purpose,
            calendars=calendars,
            headers=headers,
        )
        addressed = recipients(message)
        if request is not None:
            request.message_ids.append(message_id)
            request.sent_to[message_id] = addressed
            if answering and answering.message_id not in request.message_ids:
                request.message_ids.append(answering.message_id)
            names = ", ".join(p.email for p in to + (cc or []))
            request.note(now, f"sent {purpose}", f"to {names} ({message_id})")
        return Outgoing(
            message_id=message_id,
            ref=request.ref if request else None,
            purpose=purpose,
            recipients=addressed,
            raw=message.as_bytes(),
            auto_reply_to=answering.sender.email if answered and answering else None,
        )


def _sent_by(incoming: Incoming, recipients: list[Person]) -> bool:
    return any(p.email == incoming.sender.email for p in recipients)
