"""Routing: what is this message? Noise, a new request, or a reply to a request.

Noise (auto-replies, bounces, list mail, our own messages) is never answered. A reply
is recognised, in this order, by the reply address it was sent to (reference, role
and token), by the reference code in its subject, or by In-Reply-To / References
naming a message mailflow sent. Everything else is a new request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .compose import LOOP_HEADER
from .incoming import Incoming
from .model import Role
from .tokens import Tokens, find_ref


class Kind(StrEnum):
    NOISE = "noise"
    NEW_REQUEST = "new request"
    REPLY = "reply"


@dataclass(frozen=True)
class Route:
    kind: Kind
    reason: str
    ref: str | None = None
    role: Role | None = None  # the role named by a valid reply address
    token: str | None = None  # the token found, valid or not
    token_valid: bool = False


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
