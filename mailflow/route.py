"""Routing: what is this message? Noise, a calendar answer, a new request, or a reply.

Mail a mailflow sent (the loop header, our canary) is recognised first. Then calendar
answers (rsvp.py): an iTIP REPLY is automatic mail and often carries the very headers
the noise rules drop (Auto-Submitted, Precedence), so it is recognised before them and
routed by the UID of the session it answers, which holds the reference code
(`mm-7f3k2-1-…@library.org`). Other noise (noise.py: auto-replies, bounces, list mail)
is never answered; the engine gives bounces and a mentor's out-of-office their
meaning. A reply is recognised, in this order, by the reply address it was sent to
(reference, role and token), by the reference code in its subject, or by In-Reply-To /
References naming a message mailflow sent. Everything else is a new request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .incoming import Incoming
from .model import Role
from .noise import Noise, NoiseKind, classify
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
    noise: Noise | None = None  # what kind of noise, for Kind.NOISE
    calendar: CalendarAnswer | None = None  # for Kind.CALENDAR


def noise_reason(incoming: Incoming, own_address: str, loop_token: str) -> str | None:
    """Why this message must not be answered, or None (see noise.py for the kinds)."""
    noise = classify(incoming, own_address, loop_token)
    return noise.reason if noise else None


def route(
    incoming: Incoming,
    tokens: Tokens,
    known_ref: Callable[[str], bool],
    ref_for_message: Callable[[str], str | None],
    loop_token: str,
    own_address: str,
    check_noise: bool = True,
) -> Route:
    """`known_ref(ref) -> bool`; `ref_for_message(message_id) -> ref | None`."""
    noise = classify(incoming, own_address, loop_token) if check_noise else None
    if noise and noise.kind in (NoiseKind.LOOP, NoiseKind.CANARY):
        return Route(Kind.NOISE, noise.reason, noise=noise)
    answer = find_calendar_answer(incoming.message)
    if answer is not None:
        return _calendar_route(answer, own_address)
    if noise:
        return Route(Kind.NOISE, noise.reason, noise=noise)
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
