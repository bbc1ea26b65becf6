"""Mail that must never be answered, sorted by kind so each kind goes where it belongs.

loop         sent by a mailflow (ours or another), checked by its X-Mailflow-Loop header
canary       our own liveness canary coming back (liveness.py)
bounce       a delivery status notification (RFC 3464 multipart/report) -> bounces.py
auto-reply   out-of-office and other responders (RFC 3834 Auto-Submitted, X-Autoreply…);
             from a mentor who was asked, it is a signal, not noise (workflow.py)
bulk         list and bulk mail (Precedence, List-Id, List-Unsubscribe)
mail system  mailer-daemon, postmaster, no-reply senders, empty Return-Path
report       read receipts and other multipart/report mail
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .compose import LOOP_HEADER
from .incoming import Incoming

CANARY_HEADER = "X-Mailflow-Canary"


class NoiseKind(StrEnum):
    LOOP = "loop"
    CANARY = "canary"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto-reply"
    BULK = "bulk"
    MAIL_SYSTEM = "mail system"
    REPORT = "report"


@dataclass(frozen=True)
class Noise:
    kind: NoiseKind
    reason: str


_MAILER = re.compile(
    r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|mail-?daemon)[@+-]", re.IGNORECASE
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|out of (?:the )?office|"
    r"respuesta autom[aá]tica|r[ée]ponse automatique|abwesenheitsnotiz|autosvar|"
    r"fuera de la oficina|absence)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliverable|undelivered mail|delivery status notification|mail delivery failed|"
    r"returned mail|failure notice|delivery failure)",
    re.IGNORECASE,
)


def classify(incoming: Incoming, own_address: str, loop_token: str) -> Noise | None:
    """What kind of noise this message is, with the reason, or None for mail a person wrote."""
    header = incoming.header
    loop = header(LOOP_HEADER)
    if loop:
        if loop == loop_token and header(CANARY_HEADER):
            return Noise(NoiseKind.CANARY, "our liveness canary")
        return Noise(
            NoiseKind.LOOP,
            "sent by this mailflow (loop header)"
            if loop == loop_token
            else "sent by another mailflow (loop header)",
        )
    ctype = incoming.message.get_content_type()
    report = incoming.message.get_param("report-type", "", header="content-type")
    report_type = str(report).lower() if report else ""
    if ctype == "multipart/report" and report_type == "delivery-status":
        return Noise(NoiseKind.BOUNCE, "delivery status notification (multipart/report)")
    if _MAILER.match(incoming.sender.email) and _BOUNCE_SUBJECT.match(incoming.subject):
        return Noise(NoiseKind.BOUNCE, f"bounce from {incoming.sender.email}")
    if ctype == "multipart/report":
        return Noise(NoiseKind.REPORT, f"{report_type or 'unknown'} report (multipart/report)")
    if incoming.sender.email == own_address.lower():
        return Noise(NoiseKind.LOOP, "sent from the programme address itself")
    auto = header("Auto-Submitted").lower()
    if auto and auto != "no":
        return Noise(NoiseKind.AUTO_REPLY, f"automatic message (Auto-Submitted: {auto})")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response"):
        if header(name):
            return Noise(NoiseKind.AUTO_REPLY, f"automatic reply ({name})")
    precedence = header("Precedence").lower()
    if precedence == "auto_reply":
        return Noise(NoiseKind.AUTO_REPLY, "automatic reply (Precedence: auto_reply)")
    if precedence in ("bulk", "list", "junk"):
        return Noise(NoiseKind.BULK, f"bulk or list mail (Precedence: {precedence})")
    if header("List-Id") or header("List-Unsubscribe") or header("List-Post"):
        return Noise(NoiseKind.BULK, "mailing-list mail (List-Id)")
    if _AUTO_SUBJECT.match(incoming.subject):
        return Noise(NoiseKind.AUTO_REPLY, f"automatic reply (subject {incoming.subject[:40]!r})")
    if header("Return-Path").strip() == "<>":
        return Noise(NoiseKind.MAIL_SYSTEM, "bounce or notification (empty Return-Path)")
    if not incoming.sender.email or _MAILER.match(incoming.sender.email):
        return Noise(NoiseKind.MAIL_SYSTEM, f"sent by a mail system ({incoming.sender.email or 'no sender'})")
    return None
