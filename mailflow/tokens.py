"""Reference codes and reply addresses.

Every request has a reference code (`MM-7F3K2`) shown in every subject. Every message
sent to a person carries a Reply-To that names the request and that person's role and
holds a short HMAC token over (reference, role, address):

    mentoring+mm-7f3k2.m.k3j9x2qa@library.org

so a reply routes without guessing, and a reply from anyone else, or with a forged
token, is recognised. The HMAC key comes from the environment or from a 0600 file
next to the state, never from config.toml.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from .model import Role

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REF_PATTERN = re.compile(r"\bMM-([0-9A-HJKMNP-TV-Z]{5})\b", re.IGNORECASE)
ROLE_LETTER = {Role.PROTEGE: "p", Role.MENTOR: "m", Role.COORDINATOR: "c"}
LETTER_ROLE = {v: k for k, v in ROLE_LETTER.items()}
PAIR_LETTER = "x"  # a message to both parties: the sender must be one of them
_TAG = re.compile(
    r"^(?P<local>[^+@]+)\+(?P<ref>mm-[0-9a-z]{5})\.(?P<role>[pmcx])\."
    r"(?P<token>[a-z2-7]{8})@(?P<domain>.+)$",
    re.IGNORECASE,
)


def new_ref(taken: Callable[[str], bool]) -> str:
    while True:
        ref = "MM-" + "".join(secrets.choice(ALPHABET) for _ in range(5))
        if not taken(ref):
            return ref


def find_ref(text: str) -> str | None:
    match = REF_PATTERN.search(text or "")
    return f"MM-{match.group(1).upper()}" if match else None


class Tokens:
    def __init__(self, secret: bytes, address: str) -> None:
        self.secret = secret
        self.local, _, self.domain = address.partition("@")

    def token(self, ref: str, role: Role | None, email: str) -> str:
        subject = f"{role.value}|{email.lower()}" if role else "pair|"
        digest = hmac.new(self.secret, f"{ref.upper()}|{subject}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:5]).decode().lower()

    def reply_address(self, ref: str, role: Role, email: str) -> str:
        """The Reply-To for a message to one person in one role."""
        tag = f"{ref.lower()}.{ROLE_LETTER[role]}.{self.token(ref, role, email)}"
        return f"{self.local}+{tag}@{self.domain}"

    def pair_address(self, ref: str) -> str:
        """The Reply-To for a message to both protégé and mentor."""
        return f"{self.local}+{ref.lower()}.{PAIR_LETTER}.{self.token(ref, None, '')}@{self.domain}"

    def read(self, address: str) -> tuple[str, Role | None, str] | None:
        """(ref, role, token) from one of our reply addresses (role None: either party)."""
        match = _TAG.match(address.strip().strip("<>"))
        if not match or match["local"].lower() != self.local.lower():
            return None
        letter = match["role"].lower()
        role = None if letter == PAIR_LETTER else LETTER_ROLE[letter]
        return match["ref"].upper(), role, match["token"].lower()

    def valid(self, ref: str, role: Role | None, email: str, token: str) -> bool:
        return hmac.compare_digest(self.token(ref, role, email if role else ""), token.lower())


def load_secret(env_name: str, fallback_file: Path) -> bytes:
    """The HMAC key: from the environment, else from a 0600 file created on first use."""
    value = os.environ.get(env_name)
    if value:
        return value.encode()
    if fallback_file.exists():
        return fallback_file.read_bytes().strip()
    fallback_file.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    descriptor = os.open(fallback_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
    return secret
