"""Real servers for the tests, on 127.0.0.1 and free ports picked at run time.

- `Dovecot`: a private instance of Debian's dovecot-imapd (own base_dir, state_dir and
  log under a temporary folder, a passwd-file passdb, optionally an oauth2 passdb,
  TLS and a reduced capability list). `./dev test` installs the package; a missing
  Dovecot is an error, never a skip.
- `SmtpServer`: aiosmtpd's `Controller`, keeping every message it accepts; it can be
  stopped and started on the same port, or told to answer 451 for a while.
- `Authority`: a stand-in for Microsoft Entra ID that msal talks to over HTTPS (OpenID
  discovery, client credentials, device code, refresh tokens), plus the RFC 7662
  token-introspection endpoint Dovecot's oauth2 passdb asks.

Used by the fixtures in conftest.py; later tests (fault injection, benchmarks) reuse them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

DEADLINE = 10.0  # seconds: how long a condition may take before a test fails


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll `condition` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def message_id(raw: bytes) -> str:
    return str(BytesHeaderParser(policy=default_policy).parsebytes(raw).get("Message-ID", "")).strip()


# -- TLS ------------------------------------------------------------------------------
class Certificates:
    """A throw-away certificate authority and a certificate for 127.0.0.1 (trustme)."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.server.private_key_pem.write_to_path(str(self.key_file))
        for path in (self.ca_file, self.cert_file, self.key_file):
            os.chmod(path, 0o644)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        return context


# -- Dovecot --------------------------------------------------------------------------
DOVECOT_CONF = """\
instance_name = mailflow-test-{port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0 secs
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
default_internal_user = {user}
default_login_user = {login_user}
{ssl}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
{oauth2_passdb}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 20
{capability}
}}
"""


class Dovecot:
    """A private Dovecot for one test, stopped (and its folder removed) by `close()`."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        capabilities: str | None = None,
        introspection_url: str | None = None,
        certificates: Certificates | None = None,
    ) -> None:
        binary = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        if binary is None:
            raise RuntimeError(
                "Dovecot is not installed. ./dev test installs it (Debian package dovecot-imapd); "
                "or run: apt-get install dovecot-imapd"
            )
        self.binary = binary
        self.doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        self.users = users or {"mentoring": "secret"}
        self.capabilities = capabilities
        self.introspection_url = introspection_url
        self.certificates = certificates
        # Not under pytest's tmp_path: Dovecot's processes run as another user and need
        # to traverse the folder, and its sockets need a short path.
        self.root = Path(tempfile.mkdtemp(prefix="mf-dovecot-"))
        os.chmod(self.root, 0o755)
        self.port = 0
        self.tls_port = 0
        self.config_path = self.root / "dovecot.conf"
        self._write_files()

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
                self.tls_port = free_port() if self.certificates else 0
                self._write_config()
            # The daemon keeps the caller's stdout and stderr open: they go to a file, not a pipe.
            output = self.root / "dovecot.out"
            with open(output, "ab") as sink:
                result = subprocess.run(
                    [self.binary, "-c", str(self.config_path)],
                    stdout=sink,
                    stderr=sink,
                    stdin=subprocess.DEVNULL,
                    timeout=30,
                )
            if result.returncode != 0:
                raise RuntimeError(f"dovecot did not start: {output.read_text()}\n{self.log()}")
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if port_open(self.port) and (not self.tls_port or port_open(self.tls_port)):
                    return
                if "Address already in use" in self.log():
                    break
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"dovecot did not listen on 127.0.0.1:{self.port}\n{self.log()}")

    def stop(self) -> None:
        """Stop the server the way a service manager restarting it does: the master and
        every process it started, including the ones serving logged-in clients (left
        alone, Dovecot's IMAP processes outlive `doveadm stop`)."""
        pid_file = self.root / "run" / "master.pid"
        master = int(pid_file.read_text().strip()) if pid_file.exists() else None
        children = _children(master) if master is not None else []
        subprocess.run(
            [self.doveadm, "-c", str(self.config_path), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in [*children, *([master] if master is not None else [])]:
            wait_until(lambda pid=pid: not _alive(pid), what=f"dovecot process {pid} to stop")
        wait_until(lambda: not port_open(self.port), what="dovecot's port to close")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Gone at once (SIGKILL to the master and its children): a graceful stop takes
        Dovecot's master about three seconds, too long to pay after every test."""
        try:
            pid_file = self.root / "run" / "master.pid"
            if pid_file.exists():
                master = int(pid_file.read_text().strip())
                for pid in [*_children(master), master]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not _alive(master), what="dovecot to end")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- addresses -----------------------------------------------------------------------
    def url(self, user: str = "mentoring", folder: str = "INBOX", *, tls: bool = False) -> str:
        if tls:
            return f"imaps://{user}@127.0.0.1:{self.tls_port}/{folder}"
        return f"imap://{user}@127.0.0.1:{self.port}/{folder}"

    # -- looking and touching, as a person or a mail delivery agent would -----------------
    def client(self, user: str = "mentoring") -> IMAPClient:
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=DEADLINE)
        client.login(user, self.users[user])
        return client

    def append(self, raw: bytes, folder: str = "INBOX", user: str = "mentoring") -> None:
        with self.client(user) as client:
            client.append(folder, raw)

    def messages(self, folder: str = "INBOX", user: str = "mentoring") -> list[bytes]:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            found = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [bytes(found[uid][b"BODY[]"]) for uid in sorted(found)]

    def deliver_on_disk(self, raw: bytes, user: str = "mentoring") -> None:
        """Put a message straight into the user's Maildir, as a local delivery agent would
        while the IMAP service is down."""
        maildir = self.root / "mail" / user
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}.{secrets.token_hex(4)}.test"
        (maildir / "tmp" / name).write_bytes(raw)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)
        self._chown_mail()

    def connections(self, user: str = "mentoring") -> int:
        """IMAP connections the server has open for `user` (doveadm who)."""
        result = subprocess.run(
            [self.doveadm, "-c", str(self.config_path), "who", "-1", user],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return sum(1 for line in result.stdout.splitlines()[1:] if line.split()[:1] == [user])

    # -- files ---------------------------------------------------------------------------
    def _write_files(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir()
        (self.root / "passwd").write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self.users.items())
        )
        if self.introspection_url:
            (self.root / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {self.introspection_url}\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
                "force_introspection = yes\n"
            )
        self._chown_mail()

    def _write_config(self) -> None:
        as_root = os.geteuid() == 0
        user = "dovecot" if as_root else pwd.getpwuid(os.geteuid()).pw_name
        login_user = "dovenull" if as_root else user
        group = user
        ssl_lines = "ssl = no"
        if self.certificates:
            ssl_lines = (
                f"ssl = yes\nssl_cert = <{self.certificates.cert_file}\n"
                f"ssl_key = <{self.certificates.key_file}"
            )
        oauth2 = ""
        if self.introspection_url:
            oauth2 = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.root}/oauth2.conf.ext\n}}"
            )
        capability = f"  imap_capability = {self.capabilities}" if self.capabilities else ""
        self.config_path.write_text(
            DOVECOT_CONF.format(
                root=self.root,
                port=self.port,
                tls_port=self.tls_port,
                user=user,
                login_user=login_user,
                group=group,
                ssl=ssl_lines,
                oauth2_passdb=oauth2,
                capability=capability,
            )
        )

    def _chown_mail(self) -> None:
        if os.geteuid() != 0:
            return
        owner = pwd.getpwnam("dovecot")
        for folder, _dirs, files in os.walk(self.root / "mail"):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), owner.pw_uid, owner.pw_gid)


def _alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may be slow to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry.name))
    return found


# -- SMTP -----------------------------------------------------------------------------
@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    message_id: str


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.server.refuse_recipients:
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.refuse:
            return self.server.refuse
        raw = envelope.original_content or b""
        with self.server.lock:
            self.server.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw, message_id(raw))
            )
        return "250 2.0.0 OK"

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        blob = args[1] if len(args) > 1 else None
        if blob is None:
            answer = await smtp.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            decoded = answer.decode()
        else:
            decoded = base64.b64decode(blob).decode()
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        check = self.server.check_token
        if check is not None and check(user, token):
            self.server.logins.append((user, "XOAUTH2"))
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False, message=self.server.auth_failure)


class SmtpServer:
    """aiosmtpd on 127.0.0.1, keeping every message it accepts, in order."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        check_token: Callable[[str, str], bool] | None = None,
        certificates: Certificates | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.users = users
        self.check_token = check_token
        self.certificates = certificates
        self.implicit_tls = implicit_tls
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self.refuse = ""  # e.g. "451 4.3.0 Try again later": DATA is answered with it
        self.refuse_recipients: set[str] = set()  # RCPT TO is answered 550 for these
        self.auth_failure = "535 5.7.3 Authentication unsuccessful"
        self.lock = threading.Lock()
        self.port = 0
        self._controller: Controller | None = None

    def start(self) -> None:
        self.port = self.port or free_port()
        kwargs: dict[str, Any] = {}
        if self.users is not None or self.check_token is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.certificates and not self.implicit_tls:
            kwargs["tls_context"] = self.certificates.server_context()
        controller = Controller(
            _SmtpHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=self.certificates.server_context()
            if self.implicit_tls and self.certificates
            else None,
            ready_timeout=DEADLINE,
            **kwargs,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        wait_until(lambda: not port_open(self.port), what="the SMTP port to close")

    def close(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def url(self, user: str | None = None) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{user + '@' if user else ''}127.0.0.1:{self.port}"

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.message_id for r in self.received)

    def messages(self) -> list[bytes]:
        with self.lock:
            return [r.raw for r in self.received]

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                self.logins.append((user, mechanism))
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False, message=self.auth_failure)


# -- Microsoft Entra ID, as far as msal and Dovecot can tell ---------------------------
@dataclass
class Issued:
    user: str
    expires: float
    kind: str  # client_credentials, device_code or refresh_token


@dataclass
class Authority:
    """HTTPS endpoints msal uses (discovery, token, device code) and an HTTP introspection
    endpoint for Dovecot; tokens are random strings remembered here."""

    certificates: Certificates
    tenant: str = "library.onmicrosoft.com"
    client_id: str = "11111111-2222-3333-4444-555555555555"
    client_secret: str = "the-client-secret"
    mailbox: str = "mentoring"  # the user a token is for (Dovecot's username attribute)
    expires_in: int = 3600
    fail_with: dict[str, Any] | None = None  # an Entra error body for the next token requests
    tokens: dict[str, Issued] = field(default_factory=dict)
    grants: Counter[str] = field(default_factory=Counter)
    introspections: int = 0

    def start(self) -> None:
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                authority._get(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                authority._post(self, form)

        self._https = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._https.socket = self.certificates.server_context().wrap_socket(
            self._https.socket, server_side=True
        )
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for server in (self._https, self._http):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self._https.server_address[1]}"

    @property
    def url(self) -> str:
        """What goes into mail.oauth2.authority."""
        return f"{self.base}/{self.tenant}"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    def valid(self, user: str, token: str) -> bool:
        issued = self.tokens.get(token)
        return issued is not None and issued.user == user and issued.expires > time.time()

    def revoke_all(self) -> None:
        self.tokens.clear()

    # -- the endpoints -----------------------------------------------------------------
    def _get(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path).path
        tenant = path.strip("/").split("/")[0]
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            if tenant != self.tenant:
                body = {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                    "error_codes": [90002],
                }
                return _json(request, body, 400)
            root = f"{self.base}/{tenant}"
            return _json(
                request,
                {
                    "issuer": f"{root}/v2.0",
                    "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{root}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                },
            )
        return _json(request, {"error": "not_found"}, 404)

    def _post(self, request: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        path = urlsplit(request.path).path
        if path == "/introspect":
            self.introspections += 1
            issued = self.tokens.get(form.get("token", ""))
            if issued is None or issued.expires <= time.time():
                return _json(request, {"active": False})
            return _json(request, {"active": True, "username": issued.user})
        if path.endswith("/oauth2/v2.0/devicecode"):
            return _json(
                request,
                {
                    "device_code": "device-" + secrets.token_hex(8),
                    "user_code": "MFLOW123",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 300,
                    "interval": 1,
                    "message": "To sign in, open https://microsoft.com/devicelogin and enter MFLOW123.",
                },
            )
        if path.endswith("/oauth2/v2.0/token"):
            return self._token(request, form)
        return _json(request, {"error": "not_found"}, 404)

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        grant = form.get("grant_type", "")
        self.grants[grant] += 1
        if self.fail_with is not None:
            return _json(request, self.fail_with, 400)
        if form.get("client_id") != self.client_id:
            body = {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' "
                "was not found in the directory.",
                "error_codes": [700016],
            }
            return _json(request, body, 400)
        if grant == "client_credentials":
            if form.get("client_secret") != self.client_secret:
                body = {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                }
                return _json(request, body, 401)
            return _json(request, self._issue("client_credentials"))
        if grant in ("urn:ietf:params:oauth:grant-type:device_code", "device_code", "refresh_token"):
            return _json(request, self._issue_for_person(grant))
        return _json(request, {"error": "unsupported_grant_type"}, 400)

    def _issue(self, kind: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.tokens[token] = Issued(self.mailbox, time.time() + self.expires_in, kind)
        return {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}

    def _issue_for_person(self, grant: str) -> dict[str, Any]:
        body = self._issue("refresh_token" if grant == "refresh_token" else "device_code")
        now = int(time.time())
        claims = {
            "aud": self.client_id,
            "iss": f"{self.url}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": "person-1",
            "oid": "00000000-0000-0000-0000-00000000000a",
            "tid": "00000000-0000-0000-0000-0000000000ff",
            "preferred_username": "coordinator@library.org",
            "name": "Programme Coordinator",
        }
        client_info = {"uid": claims["oid"], "utid": claims["tid"]}
        body.update(
            refresh_token="rt-" + secrets.token_urlsafe(24),
            id_token=".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""]),
            client_info=_b64(client_info),
            scope=" ".join(
                [
                    "https://outlook.office365.com/IMAP.AccessAsUser.All",
                    "https://outlook.office365.com/SMTP.Send",
                ]
            ),
        )
        return body


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _json(request: BaseHTTPRequestHandler, body: dict[str, Any], status: int = 200) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
