"""IMAP in: the programme's inbox on a real mail server, watched with IDLE (RFC 2177).

Two connections at most, whatever the uptime:

- the *watcher* opens the inbox read-only (EXAMINE) and stays in IDLE, so the server
  tells it at once when mail arrives (`* N EXISTS`). IDLE is ended and re-issued every
  `idle_seconds` (well under RFC 2177's 29 minutes: NAT boxes and servers drop quiet
  connections sooner, and Office 365 IDLE sessions are known to hang silently); a
  connection that does not answer DONE within `timeout_seconds` is dropped. With
  OAuth2 the watcher logs in again, with a new token, before its token expires.
- the *worker* selects the inbox read-write and does the work: UID SEARCH, FETCH,
  MOVE. It is opened when needed and kept; a dropped one is replaced once per
  operation, and it is pinged (NOOP) whenever the watcher renews its IDLE.

Every time the watcher (re)enters IDLE, the next `wait()` returns at once, so the
engine catches up with a SEARCH made *after* IDLE began: mail that arrived while
the connection was down, or between DONE and IDLE, is never missed. Servers without
IDLE are polled every `poll_seconds`. After a failure, connecting is retried with
capped exponential back-off.

Messages are named `UIDVALIDITY:UID` (RFC 3501 2.3.1.1). A UID is only acted on
under the UIDVALIDITY it was fetched with; when the server changes UIDVALIDITY the
messages are simply fetched again under their new UIDs, and the store's
Message-ID+digest key makes sure each is handled once. Filing uses UID MOVE (RFC 6851)
where offered, else UID COPY + \\Deleted + UID EXPUNGE of that one UID (RFC 4315): a
bare EXPUNGE would also destroy messages a person marked deleted. Without UIDPLUS
the original stays in the inbox marked \\Deleted and is no longer fetched. A message
that a person moved or deleted meanwhile is not an error. Folders are written with
`/` in config.toml and translated to the server's own separator (Dovecot's Maildir
uses `.`), under its personal namespace (RFC 2342); they are created when missing.

Only this module imports imapclient.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from ..auth import REFRESH_MARGIN, AccessToken, AuthError, Credentials, OAuth2, imap_login_advice
from ..backoff import Backoff
from ..errors import MailboxError
from ..servers import ServerAddress, tls_context
from .base import NEEDS_ATTENTION, PROCESSED, Fetched

log = logging.getLogger(__name__)

# Failures of the connection itself (as opposed to a NO or BAD answer to a command).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, IMAPClientAbortError, EOFError)
BATCH = 200
T = TypeVar("T")


@dataclass
class _Session:
    """One logged-in connection and what it knows."""

    client: IMAPClient
    capabilities: frozenset[str]
    uidvalidity: int
    token: AccessToken | None  # the OAuth2 token it logged in with
    security: str  # TLS, STARTTLS or plain text on loopback
    idling_since: float | None = None


class ImapSource:
    def __init__(
        self,
        address: ServerAddress,
        credentials: Credentials,
        *,
        folders: dict[str, str],
        idle_seconds: float = 240.0,
        poll_seconds: float = 5.0,
        reconnect_max_seconds: float = 300.0,
        timeout_seconds: float = 60.0,
        ca_file: str | None = None,
        batch: int = BATCH,
    ) -> None:
        self.address = address
        self.credentials = credentials
        self.wanted_folders = {PROCESSED: folders[PROCESSED], NEEDS_ATTENTION: folders[NEEDS_ATTENTION]}
        self.idle_seconds = idle_seconds
        self.poll_seconds = poll_seconds
        self.timeout = timeout_seconds
        self.ca_file = ca_file
        self.batch = batch
        self.backoff = Backoff(first=min(1.0, reconnect_max_seconds), cap=reconnect_max_seconds)
        self.wakes: Counter[str] = Counter()  # why wait() returned: idle, poll, catch-up, woken
        self.logins = 0
        self._worker: _Session | None = None
        self._watcher: _Session | None = None
        self._server_folders: dict[str, str] = {}
        self._uidvalidity: int | None = None
        self._stuck: set[int] = set()  # UIDs that could not be filed, not fetched again this session
        self._retry_at = 0.0  # monotonic: no connection attempt before this
        self._catch_up = False
        self._idle_offered: bool | None = None
        self._reconnect_fresh = False  # the next OAuth2 login asks for a new token
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    @property
    def idling(self) -> bool:
        """The watcher is connected and in IDLE."""
        return self._watcher is not None and self._watcher.idling_since is not None

    # -- MailSource ------------------------------------------------------------------
    def fetch(self, limit: int | None = None) -> list[Fetched]:
        """Up to `limit` (else `batch`) messages of the inbox, oldest first (by UID), not
        marked deleted."""

        def search_and_fetch(session: _Session) -> list[Fetched]:
            # A server reports new messages to a session only between commands (RFC 3501
            # 7.3.1 EXISTS); NOOP lets the SEARCH below see what arrived since the last one.
            session.client.noop()
            uids = sorted(u for u in session.client.search(["UNDELETED"]) if u not in self._stuck)
            wanted = uids[: min(limit or self.batch, self.batch)]
            if not wanted:
                return []
            found = session.client.fetch(wanted, ["BODY.PEEK[]"])
            items = []
            for uid in wanted:
                raw = found.get(uid, {}).get(b"BODY[]")
                if raw is not None:  # else expunged between SEARCH and FETCH
                    items.append(Fetched(key=f"{session.uidvalidity}:{uid}", raw=bytes(raw)))
            return items

        return self._with_worker("fetch the inbox", search_and_fetch)

    def file_many(self, items: list[Fetched], folder: str) -> None:
        """Move messages to one folder with one command per batch (RFC 6851 UID MOVE takes a
        set); should the server refuse the set, each message is filed on its own."""
        if not items:
            return
        validities = {item.key.partition(":")[0] for item in items}
        uids = [int(item.key.partition(":")[2]) for item in items]

        def move_all(session: _Session) -> bool:
            if validities != {str(session.uidvalidity)} or "MOVE" not in session.capabilities:
                return False
            try:
                session.client.move(uids, self._server_folders[folder])
            except IMAPClientAbortError:
                raise
            except IMAPClientError as error:
                log.info("inbox: moving %d messages at once was refused (%s); one by one", len(uids), error)
                return False
            return True

        if not self._with_worker(f"file {len(items)} messages", move_all):
            for item in items:
                self.file(item, folder)

    def file(self, item: Fetched, folder: str) -> None:
        """Move one message to its folder; a message already gone is not an error."""
        validity, _, number = item.key.partition(":")
        uid = int(number)

        def move(session: _Session) -> None:
            if int(validity) != session.uidvalidity:
                log.warning(
                    "inbox: UIDVALIDITY changed (%s -> %s); message %s will be filed when seen again",
                    validity,
                    session.uidvalidity,
                    item.key,
                )
                return
            target = self._server_folders[folder]
            client = session.client
            try:
                if "MOVE" in session.capabilities:
                    client.move([uid], target)
                else:
                    client.copy([uid], target)
                    client.add_flags([uid], [b"\\Deleted"], silent=True)
                    if "UIDPLUS" in session.capabilities:
                        client.uid_expunge([uid])
            except IMAPClientAbortError:
                raise
            except IMAPClientError as error:
                if not client.search(["UID", str(uid)]):
                    return  # moved or deleted by a person meanwhile
                self._stuck.add(uid)
                log.error("inbox: could not file message %s into %s: %s", item.key, target, error)

        self._with_worker(f"file message {item.key}", move)

    def wait(self, timeout: float) -> bool:
        """Until the server reports new mail (True), `timeout` passes or `wake()` (False)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._catch_up:
                self._catch_up = False
                self.wakes["catch-up"] += 1
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._idle_offered is False:
                step = min(remaining, self.poll_seconds)
                if self._sleep(step):
                    self.wakes["woken"] += 1
                    return False
                self.wakes["poll"] += 1
                return True
            if self._watcher is None:
                if time.monotonic() < self._retry_at:
                    if self._sleep(min(remaining, self._retry_at - time.monotonic())):
                        self.wakes["woken"] += 1
                        return False
                    continue
                self._start_watching()
                continue
            outcome = self._watch(min(remaining, self._renew_in(self._watcher)))
            if outcome is not None:
                return outcome

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"!")

    def close(self) -> None:
        for session in (self._watcher, self._worker):
            if session is not None:
                self._hang_up(session)
        self._watcher = self._worker = None
        for descriptor in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._wake_read = self._wake_write = -1

    def describe(self) -> str:
        """Connects (worker) and says what the server offers; raises when it cannot."""
        session = self._with_worker("connect", lambda s: s)
        offered = [c for c in ("IDLE", "MOVE", "UIDPLUS") if c in session.capabilities]
        waiting = len(session.client.search(["UNDELETED"]))
        mode = "IDLE" if "IDLE" in session.capabilities else f"polling every {self.poll_seconds:g}s"
        return (
            f"{self.address.display()} ({session.security}, {self.credentials.describe()}, "
            f"{mode}; offers {' '.join(offered) or 'none of IDLE MOVE UIDPLUS'}; filing into "
            f"{self._server_folders[PROCESSED]} and {self._server_folders[NEEDS_ATTENTION]}; "
            f"{waiting} waiting)"
        )

    # -- the watcher -----------------------------------------------------------------
    def _start_watching(self) -> None:
        try:
            session = self._connect(readonly=True)
        except (MailboxError, AuthError) as error:
            self._failed("watch the inbox", error)
            return
        if "IDLE" not in session.capabilities:
            self._idle_offered = False
            log.info("inbox: the server offers no IDLE; polling every %gs", self.poll_seconds)
            self._hang_up(session)
            self._catch_up = True
            return
        self._idle_offered = True
        try:
            session.client.idle()
        except (*CONNECTION_ERRORS, IMAPClientError) as error:
            self._hang_up(session)
            self._failed("start IDLE", MailboxError(str(error)))
            return
        session.idling_since = time.monotonic()
        self._watcher = session
        self.backoff.reset()
        self._catch_up = True  # search once now that IDLE is on: nothing is missed

    def _renew_in(self, session: _Session) -> float:
        assert session.idling_since is not None
        return max(0.0, session.idling_since + self.idle_seconds - time.monotonic())

    def _watch(self, seconds: float) -> bool | None:
        """Listen on the IDLE connection; True/False ends `wait`, None goes round again."""
        session = self._watcher
        assert session is not None
        if seconds <= 0:
            self._renew()
            return None
        try:
            ready, _, _ = select.select([session.client.socket(), self._wake_read], [], [], seconds)
        except (OSError, ValueError) as error:
            self._lose_watcher(f"select failed: {error}")
            return None
        if self._wake_read in ready:
            self._drain_wake()
            self.wakes["woken"] += 1
            return False
        if not ready:
            return None  # time to renew, or the caller's deadline
        try:
            responses = session.client.idle_check(timeout=0)
        except (*CONNECTION_ERRORS, IMAPClientError) as error:
            self._lose_watcher(str(error))
            return None
        if any(_is(r, b"BYE") for r in responses):
            self._lose_watcher("the server said BYE")
            return None
        if any(_is(r, b"EXISTS") for r in responses):
            self.wakes["idle"] += 1
            return True
        if not responses:
            self._renew()  # readable but nothing to read: DONE tells a live connection from a dead one
        return None

    def _renew(self) -> None:
        """End IDLE and start it again; log in anew when the token is about to expire."""
        session = self._watcher
        assert session is not None
        try:
            _, _responses = session.client.idle_done()
        except (*CONNECTION_ERRORS, IMAPClientError) as error:
            self._lose_watcher(f"no answer to DONE: {error}")
            return
        session.idling_since = None
        self._ping_worker()
        if session.token is not None and session.token.seconds_left() < REFRESH_MARGIN + self.idle_seconds:
            log.info("inbox: logging the IDLE connection in again before its OAuth2 token expires")
            self._hang_up(session)
            self._watcher = None
            return
        try:
            session.client.idle()
        except (*CONNECTION_ERRORS, IMAPClientError) as error:
            self._lose_watcher(f"IDLE refused: {error}")
            return
        session.idling_since = time.monotonic()
        self.wakes["renewed"] += 1
        self._catch_up = True  # the moment between DONE and IDLE is covered by a search

    def _lose_watcher(self, why: str) -> None:
        log.warning("inbox: IDLE connection lost (%s); reconnecting", why)
        if self._watcher is not None:
            self._hang_up(self._watcher)
        self._watcher = None
        self._reconnect_fresh = True

    # -- the worker ------------------------------------------------------------------
    def _with_worker(self, what: str, operation: Callable[[_Session], T]) -> T:
        for attempt in (1, 2):
            session = self._work(what)
            try:
                return operation(session)
            except CONNECTION_ERRORS as error:
                self._hang_up(session)
                self._worker = None
                if attempt == 2:
                    self._failed(what, MailboxError(f"connection lost: {error}"))
                    raise MailboxError(f"cannot {what} on {self.address.display()}: {error}") from None
                log.info("inbox: connection lost (%s); reconnecting", error)
            except IMAPClientError as error:
                raise MailboxError(
                    f"the server refused to {what} on {self.address.display()}: {error}"
                ) from None
        raise AssertionError("unreachable")

    def _work(self, what: str) -> _Session:
        if self._worker is not None:
            return self._worker
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise MailboxError(
                f"cannot {what}: {self.address.display()} was unreachable; next try in {wait:.0f}s"
            )
        try:
            session = self._connect(readonly=False)
            self._prepare_folders(session)
        except (MailboxError, AuthError) as error:
            self._failed(what, error)
            raise
        self._idle_offered = "IDLE" in session.capabilities
        self._worker = session
        self.backoff.reset()
        return session

    def _ping_worker(self) -> None:
        if self._worker is None:
            return
        try:
            self._worker.client.noop()
        except (*CONNECTION_ERRORS, IMAPClientError):
            self._hang_up(self._worker)
            self._worker = None

    def _prepare_folders(self, session: _Session) -> None:
        """Map `processed` and `needs-attention` to folders on this server; create them."""
        client = session.client
        prefix, separator = "", "/"
        if "NAMESPACE" in session.capabilities:
            personal = client.namespace().personal
            if personal:
                prefix, separator = personal[0][0], personal[0][1] or "/"
        else:
            listed = client.list_folders("", "")
            if listed and listed[0][1]:
                separator = listed[0][1].decode() if isinstance(listed[0][1], bytes) else listed[0][1]
        for kind, wanted in self.wanted_folders.items():
            name = prefix + separator.join(part for part in wanted.split("/") if part)
            if not client.folder_exists(name):
                try:
                    client.create_folder(name)
                    client.subscribe_folder(name)
                    log.info("inbox: created folder %s", name)
                except IMAPClientError as error:
                    if not client.folder_exists(name):  # else someone else just created it
                        raise MailboxError(f"cannot create the folder {name}: {error}") from None
            self._server_folders[kind] = name

    # -- connecting --------------------------------------------------------------------
    def _connect(self, *, readonly: bool) -> _Session:
        """Connect, protect the connection, log in and select the folder."""
        address = self.address
        try:
            if address.implicit_tls:
                client = IMAPClient(
                    address.host,
                    address.port,
                    ssl=True,
                    ssl_context=tls_context(self.ca_file),
                    timeout=self.timeout,
                )
            else:
                client = IMAPClient(address.host, address.port, ssl=False, timeout=self.timeout)
        except CONNECTION_ERRORS as error:
            raise MailboxError(f"cannot connect to {address.display()}: {error}") from None
        security = "TLS" if address.implicit_tls else "plain text on loopback"
        try:
            if not address.implicit_tls:
                if client.has_capability("STARTTLS"):
                    client.starttls(tls_context(self.ca_file))
                    security = "STARTTLS"
                elif not address.loopback:
                    raise MailboxError(
                        f"{address.display()} offers no STARTTLS, and mailflow sends a password in "
                        "plain text only to a server on this machine; use imaps:// (port 993)"
                    )
            token = self._login(client)
            selected = client.select_folder(address.folder, readonly=readonly)
            capabilities = frozenset(_text(c).upper() for c in client.capabilities())
        except BaseException as error:
            self._hang_up_client(client)
            if isinstance(error, CONNECTION_ERRORS):
                raise MailboxError(f"lost {address.display()} while logging in: {error}") from None
            if isinstance(error, IMAPClientError):
                raise MailboxError(
                    f"{address.display()}: cannot open the folder {address.folder!r}: {error}"
                ) from None
            raise
        self.logins += 1
        uidvalidity = int(selected.get(b"UIDVALIDITY", 0))
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            log.warning(
                "inbox: UIDVALIDITY of %s changed from %s to %s; messages will be fetched again "
                "and recognised by their Message-ID",
                address.folder,
                self._uidvalidity,
                uidvalidity,
            )
            self._stuck.clear()
        self._uidvalidity = uidvalidity
        log.info(
            "inbox: connected to %s (%s, %s)",
            address.display(),
            "watching" if readonly else "working",
            security,
        )
        return _Session(client, capabilities, uidvalidity, token, security)

    def _login(self, client: IMAPClient) -> AccessToken | None:
        credentials = self.credentials
        if not isinstance(credentials, OAuth2):
            try:
                client.login(credentials.user, credentials.password)
            except LoginError as error:
                raise AuthError(imap_login_advice(credentials, _said(error))) from None
            return None
        fresh = self._reconnect_fresh  # every reconnect after a drop asks for a new token
        self._reconnect_fresh = False
        for attempt in (1, 2):
            token = credentials.tokens.token(fresh=fresh or attempt == 2)
            try:
                client.oauth2_login(credentials.user, token.value)
                return token
            except LoginError as error:
                if attempt == 2:
                    raise AuthError(imap_login_advice(credentials, _said(error))) from None
                log.info("inbox: the server refused the OAuth2 token; trying once with a new one")
        raise AssertionError("unreachable")

    def _failed(self, what: str, error: BaseException) -> None:
        wait = self.backoff.next_delay()
        self._retry_at = time.monotonic() + wait
        self._reconnect_fresh = True
        log.warning("inbox: cannot %s (%s); next try in %.0fs", what, error, wait)

    def _hang_up(self, session: _Session) -> None:
        if session.idling_since is not None:
            session.idling_since = None
            with contextlib.suppress(Exception):
                session.client.idle_done()
        self._hang_up_client(session.client)

    @staticmethod
    def _hang_up_client(client: IMAPClient) -> None:
        try:
            client.socket().settimeout(5.0)
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- waking ----------------------------------------------------------------------
    def _sleep(self, seconds: float) -> bool:
        """Sleep, unless woken (True)."""
        ready, _, _ = select.select([self._wake_read], [], [], max(0.0, seconds))
        if ready:
            self._drain_wake()
            return True
        return False

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_read, 64):
                pass
        except (BlockingIOError, OSError):
            pass


def _is(response: Any, kind: bytes) -> bool:
    """`(3, b'EXISTS')` is EXISTS; `(b'BYE', b'Shutting down')` is BYE."""
    if not isinstance(response, tuple) or len(response) < 2:
        return False
    return response[1] == kind if isinstance(response[0], int) else response[0] == kind


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _said(error: Exception) -> str:
    return " ".join(str(error).split())[:200]
