"""Who mailflow logs in as: a password from the environment, or an OAuth2 access token
from Microsoft Entra ID through msal, sent as SASL XOAUTH2 to IMAP and SMTP.

    config.toml names ─▶ Password(user, from $PASSWORD_ENV)            LOGIN / AUTH PLAIN
                     └─▶ OAuth2(user, MsalTokens)  ─▶ XOAUTH2 token      AUTHENTICATE XOAUTH2

Two OAuth2 flows (RFC 6749):

- `client_credentials` (section 4.4): an app registration with a client secret reads a
  shared mailbox; scope `https://outlook.office365.com/.default`. Tokens live in memory.
- `device_code` (RFC 8628): a person signs in once with `mailflow auth login`; msal
  keeps the refresh token in a cache file written with mode 0600, and `mailflow run`
  redeems it silently.

When a token is fetched: `token()` hands out the current one while it has more than
`REFRESH_MARGIN` left and asks msal otherwise, so a token is renewed before it
expires; `token(fresh=True)` always gets a new one from Entra ID, and the IMAP and
SMTP modules ask for that on every reconnect and once after a server refused a token.

Only this module imports msal. Secrets and tokens are never logged, never written to
the state, and never part of an error message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msal
import requests

from .config import Config, OAuth2Settings
from .errors import AuthError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY = "https://login.microsoftonline.com/{tenant}"
APP_SCOPES = ["https://outlook.office365.com/.default"]
DELEGATED_SCOPES = [
    "https://outlook.office365.com/IMAP.AccessAsUser.All",
    "https://outlook.office365.com/SMTP.Send",
]
REFRESH_MARGIN = 300.0  # seconds: a token closer than this to its expiry is renewed


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # time.time() seconds

    def seconds_left(self) -> float:
        return self.expires_at - time.time()


class TokenSource(Protocol):
    def token(self, *, fresh: bool = False) -> AccessToken: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Password:
    user: str
    password: str = field(repr=False)

    def describe(self) -> str:
        return "password"


@dataclass(frozen=True)
class OAuth2:
    user: str
    tokens: TokenSource

    def describe(self) -> str:
        return f"XOAUTH2 ({self.tokens.describe()})"


Credentials = Password | OAuth2


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Google's and Microsoft's format; no RFC)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def credentials_for(
    config: Config, user: str | None, *, smtp: bool = False, tokens: TokenSource | None = None
) -> Credentials | None:
    """The credentials config.toml describes for `user`; None for an SMTP relay without login.

    `tokens` is the one token source the IMAP and SMTP connections share (auth = 'oauth2')."""
    mail = config.mail
    if user is None:
        if smtp:
            return None
        raise ConfigError(
            "mail.inbox: name the mailbox's user, like 'imaps://mentoring@library.org@host/INBOX'"
        )
    if mail.auth == "oauth2":
        return OAuth2(user, tokens or MsalTokens.from_config(config))
    variable = (mail.smtp_password_env if smtp else None) or mail.password_env
    which = "mail.outbox" if smtp else "mail.inbox"
    if not variable:
        raise ConfigError(
            f"{which} logs in as {user}: set mail.password_env to the name of the environment "
            "variable that holds the password (or use auth = 'oauth2')"
        )
    password = os.environ.get(variable)
    if not password:
        raise ConfigError(
            f"{which} logs in as {user}, but the environment variable {variable} is not set; "
            f"set it (for systemd: EnvironmentFile=) and start mailflow again"
        )
    return Password(user, password)


class MsalTokens:
    """Access tokens for one app registration, from Microsoft Entra ID through msal."""

    def __init__(
        self,
        settings: OAuth2Settings,
        *,
        secret: str | None,
        cache_path: Path,
        ca_file: str | None,
        timeout: float,
    ) -> None:
        self.settings = settings
        self._secret = secret
        self.cache_path = cache_path
        self.ca_file = ca_file
        self.timeout = timeout
        self.scopes = settings.scopes or (
            APP_SCOPES if settings.flow == "client_credentials" else DELEGATED_SCOPES
        )
        self._app: msal.ClientApplication | None = None
        self._cache: msal.SerializableTokenCache | None = None
        self._current: AccessToken | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> MsalTokens:
        settings = config.mail.oauth2
        if settings is None:
            raise ConfigError("auth = 'oauth2' needs a [mail.oauth2] table")
        secret = None
        if settings.flow == "client_credentials":
            assert settings.client_secret_env is not None
            secret = os.environ.get(settings.client_secret_env)
            if not secret:
                raise ConfigError(
                    f"mail.oauth2.client_secret_env names {settings.client_secret_env}, which is not "
                    "set; put the client secret's Value there (for systemd: EnvironmentFile=)"
                )
        return cls(
            settings,
            secret=secret,
            cache_path=config.resolve(settings.token_cache),
            ca_file=str(config.resolve(config.mail.ca_file)) if config.mail.ca_file else None,
            timeout=config.mail.timeout_seconds,
        )

    @property
    def authority(self) -> str:
        return self.settings.authority or DEFAULT_AUTHORITY.format(tenant=self.settings.tenant)

    def describe(self) -> str:
        return f"{self.settings.flow.replace('_', ' ')}, app {self.settings.client_id}"

    # -- tokens ----------------------------------------------------------------------
    def token(self, *, fresh: bool = False) -> AccessToken:
        """A token with more than REFRESH_MARGIN left; `fresh` always asks Entra ID anew."""
        with self._lock:
            current = self._current
            if not fresh and current is not None and current.seconds_left() > REFRESH_MARGIN:
                return current
            app = self._application()
            if self.settings.flow == "client_credentials":
                assert isinstance(app, msal.ConfidentialClientApplication)
                if fresh or current is not None:
                    app.remove_tokens_for_client()  # so msal cannot answer from its cache
                result = app.acquire_token_for_client(scopes=self.scopes)
            else:
                accounts = self._accounts(app)
                result = app.acquire_token_silent_with_error(
                    self.scopes, accounts[0], force_refresh=fresh or current is not None
                )
                self._save_cache()
                if result is None:
                    raise AuthError(
                        f"the token cache {self.cache_path} holds no usable sign-in for "
                        f"{accounts[0].get('username')}; run `mailflow auth login` again"
                    )
            self._current = self._accepted(result)
            log.info(
                "OAuth2 token obtained from %s (valid %d min)",
                self.authority,
                self._current.seconds_left() // 60,
            )
            return self._current

    def _accounts(self, app: msal.ClientApplication) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = app.get_accounts()
        if not accounts:
            raise AuthError(
                f"nobody has signed in yet (no account in {self.cache_path}); run "
                "`mailflow auth login` once as a person who may read the mailbox"
            )
        return accounts

    def _accepted(self, result: dict[str, Any] | None) -> AccessToken:
        if not result or "access_token" not in result:
            raise AuthError(explain_entra_error(result or {}, self.settings))
        return AccessToken(result["access_token"], time.time() + float(result.get("expires_in", 3600)))

    # -- device code sign-in -----------------------------------------------------------
    def login_device(self, echo: Callable[[str], None]) -> str:
        """RFC 8628 device authorization: print the code, wait for the person, keep the tokens."""
        if self.settings.flow != "device_code":
            raise ConfigError(
                "mailflow auth login is for mail.oauth2.flow = 'device_code'; "
                "client_credentials needs no sign-in"
            )
        app = self._application()
        assert isinstance(app, msal.PublicClientApplication)
        flow = app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise AuthError(explain_entra_error(flow, self.settings))
        echo(flow.get("message") or f"Open {flow['verification_uri']} and enter {flow['user_code']}")
        result = app.acquire_token_by_device_flow(flow)
        self._current = self._accepted(result)
        self._save_cache()
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("sub") or "the signed-in account")

    # -- msal --------------------------------------------------------------------------
    def _application(self) -> msal.ClientApplication:
        if self._app is not None:
            return self._app
        common: dict[str, Any] = {"authority": self.authority, "timeout": self.timeout}
        if self.ca_file:
            common["http_client"] = _PrivateCaSession(self.ca_file)
        if self.settings.authority:  # not Microsoft's global cloud: no instance discovery there
            common["instance_discovery"] = False
        try:
            if self.settings.flow == "client_credentials":
                self._app = msal.ConfidentialClientApplication(
                    self.settings.client_id, client_credential=self._secret, **common
                )
            else:
                self._app = msal.PublicClientApplication(
                    self.settings.client_id, token_cache=self._load_cache(), **common
                )
        except ValueError as error:  # msal's tenant discovery failed
            raise AuthError(_explain_discovery(str(error), self.settings)) from None
        except OSError as error:  # requests' connection errors are OSErrors
            raise AuthError(f"cannot reach {self.authority}: {_reason(error)}") from None
        return self._app

    def _load_cache(self) -> msal.SerializableTokenCache:
        cache = msal.SerializableTokenCache()
        if self.cache_path.exists():
            if self.cache_path.stat().st_mode & 0o077:
                os.chmod(self.cache_path, 0o600)
                log.warning("%s was readable by others; its mode is now 0600", self.cache_path)
            cache.deserialize(self.cache_path.read_text(encoding="utf-8"))
        self._cache = cache
        return cache

    def _save_cache(self) -> None:
        cache = self._cache
        if cache is None or not cache.has_state_changed:
            return
        write_private(self.cache_path, cache.serialize())


class _PrivateCaSession(requests.Session):
    """msal's HTTP client, trusting `mail.ca_file` even when REQUESTS_CA_BUNDLE is set
    (requests lets that variable win over a session's own `verify`)."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.ca_file = ca_file

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("verify", self.ca_file)
        return super().request(method, url, *args, **kwargs)


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection error, in one short line."""
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return " ".join(f"{type(error).__name__}: {error}".split())[:200]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600 from the start), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# -- what to change, for the usual failures --------------------------------------------
# Microsoft Entra ID error codes (AADSTS…) that people meet setting up mail access.
_ENTRA_ADVICE: dict[int, str] = {
    65001: "the app has no admin consent. In the Entra admin center open App registrations > "
    "{client_id} > API permissions, add Office 365 Exchange Online: IMAP.AccessAsApp and "
    "SMTP.SendAsApp (application permissions; IMAP.AccessAsUser.All and SMTP.Send for "
    "device_code), then click 'Grant admin consent'",
    7000215: "the client secret is wrong. Put the secret's Value (not its Secret ID) from "
    "Certificates & secrets of app {client_id} into ${secret_env}",
    7000222: "the client secret has expired. Create a new one under App registrations > "
    "{client_id} > Certificates & secrets and put its Value into ${secret_env}",
    90002: "tenant '{tenant}' does not exist. Set mail.oauth2.tenant to your tenant ID (a GUID) "
    "or its domain, e.g. library.onmicrosoft.com",
    900023: "'{tenant}' is not a tenant. Set mail.oauth2.tenant to your tenant ID (a GUID) or "
    "its domain, e.g. library.onmicrosoft.com",
    700016: "there is no app {client_id} in tenant '{tenant}'. Check mail.oauth2.client_id "
    "(the Application (client) ID) and mail.oauth2.tenant: the app may live in another tenant",
    70011: "the scope is not valid. Remove mail.oauth2.scopes to use the defaults",
    1002012: "the scope is not valid. Remove mail.oauth2.scopes to use the defaults",
    700082: "the sign-in has expired from disuse. Run `mailflow auth login` again",
    70043: "the sign-in has expired (a Conditional Access sign-in frequency). "
    "Run `mailflow auth login` again",
    50173: "the sign-in was revoked (password changed?). Run `mailflow auth login` again",
    50076: "multi-factor sign-in is required. Run `mailflow auth login`",
    53003: "a Conditional Access policy blocked the sign-in. Ask your Entra admin to allow this app",
    7000218: "a client secret is required. Use flow = 'client_credentials' with client_secret_env, "
    "or allow public client flows for the app (Authentication > 'Allow public client flows')",
}


def explain_entra_error(result: dict[str, Any], settings: OAuth2Settings) -> str:
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    first_line = str(result.get("error_description") or "").splitlines()[0:1]
    said = f"{result.get('error', 'no token')}" + (f": {first_line[0]}" if first_line else "")
    for code in codes:
        if code in _ENTRA_ADVICE:
            advice = _ENTRA_ADVICE[code].format(
                client_id=settings.client_id,
                tenant=settings.tenant,
                secret_env=settings.client_secret_env or "the client secret variable",
            )
            return f"Microsoft Entra ID refused the sign-in: {advice} (AADSTS{code})"
    return f"Microsoft Entra ID refused the sign-in ({said})"


def _explain_discovery(message: str, settings: OAuth2Settings) -> str:
    """msal could not read the tenant's OpenID configuration: almost always a wrong tenant."""
    where = settings.authority or DEFAULT_AUTHORITY.format(tenant=settings.tenant)
    return (
        f"tenant '{settings.tenant}' is unknown to {where}: set mail.oauth2.tenant to your tenant ID "
        "(a GUID) or its domain, e.g. library.onmicrosoft.com"
        + ("" if "tenant" in message.lower() else f" ({message.splitlines()[0][:200]})")
    )


def imap_login_advice(credentials: Credentials, server_said: str) -> str:
    """What to change when an IMAP server refused the login."""
    if isinstance(credentials, Password):
        return (
            f"the IMAP server refused the password for {credentials.user} ({server_said}). Check the "
            "password in the environment variable; Gmail and Google Workspace need an app password"
        )
    return (
        f"the IMAP server refused the OAuth2 token for {credentials.user} ({server_said}). For Microsoft "
        "365 with client credentials: register the app's service principal in Exchange Online "
        "(New-ServicePrincipal -AppId <client id> -ObjectId <enterprise app object id>), give it the "
        f"mailbox (Add-MailboxPermission -Identity {credentials.user} -User <object id> -AccessRights "
        f"FullAccess), and check IMAP is on for the mailbox (Set-CASMailbox {credentials.user} "
        "-ImapEnabled $true)"
    )


def smtp_login_advice(credentials: Credentials, code: int, server_said: str) -> str:
    """What to change when an SMTP server refused the login (RFC 4954 535 and friends)."""
    said = f"{code} {server_said}".strip()
    lowered = server_said.lower()
    if "smtpclientauthentication is disabled" in lowered or ("5.7.139" in lowered and "disabled" in lowered):
        return (
            f"SMTP AUTH is turned off for {credentials.user} or the whole tenant ({said}). Turn it on "
            f"for the mailbox: Set-CASMailbox -Identity {credentials.user} "
            "-SmtpClientAuthenticationDisabled $false (and check Exchange admin center > Settings > "
            "Mail flow > 'Turn off SMTP AUTH protocol for your organization')"
        )
    if "application-specific password" in lowered or "5.7.9" in lowered:
        return f"the server wants an app password for {credentials.user} ({said}); create one and use it"
    if isinstance(credentials, OAuth2):
        return (
            f"the SMTP server refused the OAuth2 token for {credentials.user} ({said}). For Microsoft "
            "365: grant the app SMTP.SendAsApp with admin consent, register its service principal "
            "in Exchange Online and give it the mailbox (Add-MailboxPermission … FullAccess)"
        )
    return f"the SMTP server refused the password for {credentials.user} ({said}); check it"
