"""Trusting a sender's domain: the receiving server's Authentication-Results (RFC 8601).

Only the header added by our own server (its authserv-id, from config) counts: a
sender can write any Authentication-Results header it likes, so headers naming any
other server are ignored.
"""

from __future__ import annotations

from email.message import Message

import authres


def dmarc_result(message: Message, authserv_id: str) -> str:
    """`pass`, `fail`, `none`…, or `missing` when our server left no verdict."""
    for value in message.get_all("Authentication-Results") or []:
        try:
            header = authres.AuthenticationResultsHeader.parse_value(" ".join(str(value).split()))
        except Exception:  # a malformed header is as good as none
            continue
        if authserv_id and str(header.authserv_id).lower() != authserv_id.lower():
            continue
        for result in header.results:
            if str(result.method).lower() == "dmarc":
                return str(result.result).lower()
    return "missing"
