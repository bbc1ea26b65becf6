"""Routing: what is this message? Noise, a calendar answer, a new request, or a reply.

Our own messages are recognised first (the loop header). Then calendar answers: an
iTIP REPLY is automatic mail and often carries the very headers the noise rules drop
(Auto-Submitted, Precedence), so it is recognised before them, and routed by the UID
of the session it answers, which holds the reference code (`mm-7f3k2-1-…@library.org`).
Noise (auto-replies, bounces, list mail) is never answered. A reply is recognised, in
this order, by the reply address it was sent to (reference, role and token), by the
reference code in its subject, or by In-Reply-To / References naming a message
mailflow sent. Everything else is a new request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .compose import LOOP_HEADER
from .incoming import Incoming
from .model import Role
from .rsvp import CalendarAnswer, find_calendar_answer
from .tokens import Tokens, find_ref


class Kind(StrEnum):
    NOISE = "noise"
    NEW_REQUEST = "new request"
    REPLY = "reply"
    CALENDAR = "calendar answer"


@dataclass(frozen=True)
class Route:
    kind: Kind
    reason: str
    ref: str | None = None
    role: Role | None = None  # the role named by a valid reply address
    token: str | None = None  # the token found, valid or not
    token_valid: bool = False
    calendar: CalendarAnswer | None = None  # for Kind.CALENDAR


_MAILER = re.compile(r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)[@+-]", re.IGNORECASE)


def noise_reason(incoming: Incoming, own_address: str, loop_token: str) -> str | None:
    """Why this message must not be answered, or None."""
    header = incoming.header
    if header(LOOP_HEADER):
        same = header(LOOP_HEADER) == loop_token
        return "sent by this mailflow (loop header)" if same else "sent by another mailflow"
    if incoming.sender.email == own_address.lower():
        return "sent from the programme address itself"
    auto = header("Auto-Submitted").lower()
    if auto and auto != "no":
        return f"automatic message (Auto-Submitted: {auto})"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if header(name):
            return f"automatic reply ({name})"
    precedence = header("Precedence").lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"bulk or list mail (Precedence: {precedence})"
    if header("List-Id") or header("List-Unsubscribe"):
        return "mailing-list mail (List-Id)"
    if header("Return-Path").strip() == "<>":
        return "bounce or notification (empty Return-Path)"
    if not incoming.sender.email or _MAILER.match(incoming.sender.email):
        return f"sent by a mail system ({incoming.sender.email or 'no sender'})"
    if incoming.message.get_content_type() == "multipart/report":
        return "delivery or read report (multipart/report)"
    return None


def route(
    incoming: Incoming,
    tokens: Tokens,
    known_ref: Callable[[str], bool],
    ref_for_message: Callable[[str], str | None],
    loop_token: str,
    own_address: str,
) -> Route:
    """`known_ref(ref) -> bool`; `ref_for_message(message_id) -> ref | None`."""
    if incoming.header(LOOP_HEADER) or incoming.sender.email == own_address.lower():
        return Route(Kind.NOISE, noise_reason(incoming, own_address, loop_token) or "our own message")
    answer = find_calendar_answer(incoming.message)
    if answer is not None:
        return _calendar_route(answer, own_address)
    why = noise_reason(incoming, own_address, loop_token)
    if why:
        return Route(Kind.NOISE, why)
    for address in incoming.recipients:
        tagged = tokens.read(address)
        if tagged and known_ref(tagged[0]):
            ref, role, token = tagged
            valid = tokens.valid(ref, role, incoming.sender.email, token)
            return Route(
                Kind.REPLY,
                f"sent to the reply address of {ref}",
                ref=ref,
                role=role,
                token=token,
                token_valid=valid,
            )
    subject_ref = find_ref(incoming.subject)
    if subject_ref and known_ref(subject_ref):
        return Route(Kind.REPLY, f"reference {subject_ref} in the subject", ref=subject_ref)
    for message_id in incoming.refers_to:
        thread_ref = ref_for_message(message_id)
        if thread_ref:
            return Route(Kind.REPLY, f"in reply to {message_id}", ref=thread_ref)
    if subject_ref:
        return Route(Kind.REPLY, f"reference {subject_ref} in the subject is not known", ref=subject_ref)
    return Route(Kind.NEW_REQUEST, "no reference, reply address or thread: a new request")


def _calendar_route(answer: CalendarAnswer, own_address: str) -> Route:
    """A calendar answer goes to the request named in the UID of a session we sent."""
    domain = "@" + own_address.partition("@")[2].lower()
    refs = {find_ref(uid) for uid in answer.uids if uid.lower().endswith(domain)} - {None}
    what = f"calendar {answer.method} from {answer.client}"
    if len(refs) == 1:
        ref = refs.pop()
        return Route(Kind.CALENDAR, f"{what} for a session of {ref}", ref=ref, calendar=answer)
    uids = ", ".join(answer.uids) or "no UID"
    reason = (
        f"{what} for sessions of several requests ({uids})"
        if refs
        else f"{what} for an event mailflow did not send ({uids})"
    )
    return Route(Kind.CALENDAR, reason, calendar=answer)
