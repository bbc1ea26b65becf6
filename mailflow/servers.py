"""Mail servers named by URL in config.toml: host, port, protection, user and folder.

    imaps://mentoring@library.org@outlook.office365.com/INBOX   IMAP over TLS (RFC 8314), port 993
    imap://mentoring@imap.library.org/INBOX                    IMAP + STARTTLS (RFC 3501 6.2.1), port 143
    smtps://mentoring@library.org@smtp.library.org             SMTP over TLS (RFC 8314), port 465
    smtp://mentoring@library.org@smtp.office365.com:587        SMTP + STARTTLS (RFC 3207), port 587
    smtp://127.0.0.1:2525                                      a local relay, no login

The user is everything before the last `@` of the host part, so a mailbox address
needs no escaping (`%40` works too). A password never goes in the URL: config.toml
names the environment variable that holds it. `imap://` and `smtp://` insist on
STARTTLS, except on a loopback address, where a server that offers no STARTTLS is
spoken to in plain text (a local test server, or a relay on the same machine).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"imap": 143, "imaps": 993, "smtp": 587, "smtps": 465}


@dataclass(frozen=True)
class ServerAddress:
    scheme: str  # imap, imaps, smtp or smtps
    host: str
    port: int
    user: str | None
    folder: str  # IMAP: the folder mail arrives in; "" for SMTP

    @property
    def implicit_tls(self) -> bool:
        """TLS from the first byte (imaps, smtps); else STARTTLS when offered."""
        return self.scheme.endswith("s")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def display(self) -> str:
        """The URL as written, normalised; it never holds a secret."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        folder = f"/{self.folder}" if self.folder else ""
        return f"{self.scheme}://{user}{host}:{self.port}{folder}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_server_url(url: str, schemes: tuple[str, ...]) -> ServerAddress:
    """Read `imaps://user@host:port/FOLDER`; a `ValueError` says what to write instead."""
    parts = urlsplit(url.strip())
    shown = repr(_without_password(url.strip()))  # error messages never repeat a password
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        wanted = " or ".join(f"'{s}://'" for s in schemes)
        raise ValueError(f"{shown} should start with {wanted} (or be 'maildir:PATH')")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        raise ValueError(
            f"{shown}: a password does not belong in the URL; "
            "name the environment variable that holds it with mail.password_env"
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise ValueError(f"{shown}: {error}") from None
    if not host or not hostport:
        raise ValueError(f"{shown} names no server; write it like '{scheme}://user@mail.example.org'")
    folder = unquote(parts.path.lstrip("/"))
    if scheme.startswith("imap"):
        folder = folder or "INBOX"
    elif folder:
        raise ValueError(f"{shown}: an SMTP URL has no folder; remove '/{folder}'")
    if parts.query or parts.fragment:
        raise ValueError(f"{shown}: remove the '?…' or '#…' part; settings go in [mail]")
    return ServerAddress(
        scheme=scheme,
        host=host,
        port=port or DEFAULT_PORTS[scheme],
        user=unquote(userinfo) or None,
        folder=folder,
    )


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates and host names are always checked; `ca_file` adds a private CA."""
    return ssl.create_default_context(cafile=ca_file)


def _without_password(url: str) -> str:
    head, separator, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":…"
    return f"{head}{separator}{userinfo}{at}{hostport}{slash}{path}"
