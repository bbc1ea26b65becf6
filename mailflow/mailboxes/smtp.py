"""SMTP out: messages leave through a real mail server (RFC 5321).

`smtps://` speaks TLS from the first byte (RFC 8314); `smtp://` upgrades with STARTTLS
(RFC 3207) and talks plain text only to a server on this machine. With a user in the
URL, mailflow logs in (RFC 4954) with a password or with an OAuth2 token (XOAUTH2);
without one it hands mail to a relay that needs no login.

One connection is kept between messages; one that has been quiet for a while is
checked with NOOP first, and replaced when the server has dropped it.

What a failure means for the engine (engine.py decides when to try again):

    no connection, 421, login refused      route_down: the other waiting messages wait too
    4yz for this message                   temporary: tried again with back-off
    5yz for this message                   permanent: the coordinator is told at once
    some recipients refused, others not    PartlyDelivered: counts as sent, refusals reported

Nothing is sent twice: the engine records every message in the outbox before `send`
and journals it as sent right after the server's 250 to DATA. The one moment a crash
can repeat a message is between that reply and the journal write, a few
microseconds; SMTP itself has no way to close it (RFC 1047).

Only this module imports smtplib.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import threading
import time
from collections.abc import Callable

from ..auth import Credentials, OAuth2, smtp_login_advice, xoauth2
from ..errors import AuthError, DeliveryError, PartlyDelivered
from ..model import Outgoing
from ..servers import ServerAddress, tls_context

log = logging.getLogger(__name__)

_LINE_END = re.compile(rb"\r?\n")
QUIET_SECONDS = 30.0  # a connection unused this long is checked with NOOP before use


class SmtpSender:
    remote = True  # talks to a server: the courier sends from child processes (sending.py)

    def __init__(
        self,
        address: ServerAddress,
        credentials: Credentials | None,
        *,
        envelope_from: str,
        timeout_seconds: float = 60.0,
        ca_file: str | None = None,
    ) -> None:
        self.address = address
        self.credentials = credentials
        self.envelope_from = envelope_from
        self.timeout = timeout_seconds
        self.ca_file = ca_file
        self.connections = 0
        self._security = ""
        # One connection per thread that sends (the courier may use several at once).
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    @property
    def _smtp(self) -> smtplib.SMTP | None:
        return getattr(self._local, "smtp", None)

    @_smtp.setter
    def _smtp(self, smtp: smtplib.SMTP | None) -> None:
        self._local.smtp = smtp

    @property
    def _last_used(self) -> float:
        return getattr(self._local, "last_used", 0.0)

    @_last_used.setter
    def _last_used(self, when: float) -> None:
        self._local.last_used = when

    @property
    def _fresh_token(self) -> bool:
        return getattr(self._local, "fresh_token", False)

    @_fresh_token.setter
    def _fresh_token(self, fresh: bool) -> None:
        self._local.fresh_token = fresh

    # -- MailSender ------------------------------------------------------------------
    def send(self, outgoing: Outgoing, handed_over: Callable[[], None] | None = None) -> None:
        smtp = self._connection()
        where = self.address.display()
        try:
            refused = self._transaction(smtp, outgoing, handed_over)
        except smtplib.SMTPRecipientsRefused as error:
            said = _refusals(error.recipients)
            permanent = all(code >= 500 for code, _ in error.recipients.values())
            raise DeliveryError(f"{where} refused every recipient: {said}", permanent=permanent) from None
        except smtplib.SMTPSenderRefused as error:
            said = f"{error.smtp_code} {_text(error.smtp_error)}"
            raise DeliveryError(
                f"{where} refused the sender {self.envelope_from}: {said}",
                permanent=error.smtp_code >= 500,
                route_down=True,
            ) from None
        except smtplib.SMTPServerDisconnected as error:
            self._drop()
            raise DeliveryError(f"{where} closed the connection: {error}", route_down=True) from None
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:
                self._drop()
                raise DeliveryError(
                    f"{where} is not taking mail now: 421 {_text(error.smtp_error)}", route_down=True
                ) from None
            raise DeliveryError(
                f"{where} refused the message: {error.smtp_code} {_text(error.smtp_error)}",
                permanent=error.smtp_code >= 500,
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            self._drop()
            raise DeliveryError(f"lost {where} while sending: {error}", route_down=True) from None
        finally:
            self._last_used = time.monotonic()
        if refused:
            raise PartlyDelivered(
                f"{where} refused some recipients: {_refusals(refused)}", refused=_plain(refused)
            )

    def _transaction(
        self, smtp: smtplib.SMTP, outgoing: Outgoing, handed_over: Callable[[], None] | None
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL, RCPT, DATA (RFC 5321 §3.3), like `SMTP.sendmail`, with one difference:
        `handed_over` runs between sending the final "." and reading the server's answer.

        The server delivers once it has the final dot; a client killed while waiting for
        the 250 cannot know it did (RFC 1047). Noting the message as sent before the
        answer is read closes that window: a kill can then only fall between the two
        system calls, not across a network round trip.
        """
        data = crlf(outgoing.raw)
        smtp.ehlo_or_helo_if_needed()
        options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") and _has_8bit(data) else []
        code, answer = smtp.mail(self.envelope_from, options)
        if code != 250:
            if code == 421:
                self._drop()
            else:
                smtp.rset()
            raise smtplib.SMTPSenderRefused(code, answer, self.envelope_from)
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient in outgoing.recipients:
            code, answer = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, answer)
            if code == 421:
                self._drop()
                raise smtplib.SMTPRecipientsRefused(refused)
        if len(refused) == len(outgoing.recipients):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused(refused)
        code, answer = smtp.docmd("DATA")
        if code != 354:
            smtp.rset()
            raise smtplib.SMTPDataError(code, answer)
        body = re.sub(rb"(?m)^\.", b"..", data)  # dot-stuffing, RFC 5321 §4.5.2
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body + b".\r\n")
        if handed_over is not None:
            handed_over()
        code, answer = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
        return refused

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._open = list(self._open), set()
        for smtp in connections:
            _quietly_close(smtp)
        self._smtp = None

    def describe(self) -> str:
        self._connection()
        login = self.credentials.describe() if self.credentials else "no login"
        return f"{self.address.display()} ({self._security}, {login})"

    # -- the connection ----------------------------------------------------------------
    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None and time.monotonic() - self._last_used > QUIET_SECONDS:
            try:
                code, _ = self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                code = 0
            if code != 250:
                self._drop()
        if self._smtp is None:
            self._smtp = self._connect()
            self._last_used = time.monotonic()
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        address = self.address
        where = address.display()
        try:
            if address.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    address.host, address.port, timeout=self.timeout, context=tls_context(self.ca_file)
                )
                self._security = "TLS"
            else:
                smtp = smtplib.SMTP(address.host, address.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"cannot connect to {where}: {error}", route_down=True) from None
        try:
            smtp.ehlo()
            if not address.implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=tls_context(self.ca_file))
                    smtp.ehlo()
                    self._security = "STARTTLS"
                elif address.loopback:
                    self._security = "plain text on loopback"
                else:
                    raise DeliveryError(
                        f"{where} offers no STARTTLS, and mailflow sends mail in plain text only to "
                        "a server on this machine; use smtps:// (port 465)",
                        route_down=True,
                    )
            if self.credentials is not None:
                self._login(smtp)
        except BaseException as error:
            _quietly_close(smtp)
            if isinstance(error, (OSError, smtplib.SMTPException)):
                raise DeliveryError(f"lost {where} while logging in: {error}", route_down=True) from None
            raise
        with self._lock:
            self.connections += 1
            self._open.add(smtp)
        log.info("outbox: connected to %s (%s)", where, self._security)
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        credentials = self.credentials
        assert credentials is not None
        if not smtp.has_extn("auth"):
            raise DeliveryError(
                f"{self.address.display()} offers no AUTH (RFC 4954) here; remove the user from "
                "mail.outbox to send without logging in, or check the port",
                route_down=True,
            )
        try:
            if isinstance(credentials, OAuth2):
                self._login_oauth2(smtp, credentials)
            else:
                smtp.login(credentials.user, credentials.password)
        except smtplib.SMTPAuthenticationError as error:
            advice = smtp_login_advice(credentials, error.smtp_code, _text(error.smtp_error))
            raise DeliveryError(advice, route_down=True) from None
        except AuthError as error:
            raise DeliveryError(str(error), route_down=True) from None

    def _login_oauth2(self, smtp: smtplib.SMTP, credentials: OAuth2) -> None:
        fresh, self._fresh_token = self._fresh_token, False
        for attempt in (1, 2):
            token = credentials.tokens.token(fresh=fresh or attempt == 2)

            def respond(challenge: bytes | None = None, value: str = token.value) -> str:
                # The first call gives the initial response; a second call means the
                # server sent its error as a challenge: answer empty, read the 5yz.
                return xoauth2(credentials.user, value) if challenge is None else ""

            try:
                smtp.auth("XOAUTH2", respond)
                return
            except smtplib.SMTPAuthenticationError:
                if attempt == 2:
                    raise
                log.info("outbox: the server refused the OAuth2 token; trying once with a new one")

    def _drop(self) -> None:
        smtp = self._smtp
        if smtp is not None:
            with self._lock:
                self._open.discard(smtp)
            _quietly_close(smtp)
            self._smtp = None
            self._fresh_token = True


def _has_8bit(data: bytes) -> bool:
    return not data.isascii()


def crlf(raw: bytes) -> bytes:
    """Lines end in CRLF on the wire (RFC 5321 2.3.8); messages are stored with LF."""
    return _LINE_END.sub(b"\r\n", raw)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        with contextlib.suppress(OSError):
            smtp.close()


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:300]


def _plain(refused: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    return {address: f"{code} {_text(said)}" for address, (code, said) in refused.items()}


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {said}" for address, said in _plain(refused).items())
