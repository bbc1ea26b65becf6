"""config.toml: where mail comes from and goes, who the coordinator is, and the defaults.

Paths in the file are relative to the file's own folder. Secrets are never written
here: the file names the environment variable that holds each one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .availability import parse_availability
from .durations import parse_duration
from .errors import ConfigError
from .form import FORMATS
from .servers import parse_server_url
from .tomlsource import Issue, TomlSource


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        raise ValueError(f"write {value} with a unit, like '{value}d' or '{value}h'")
    return parse_duration(str(value))


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception as error:
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like 'America/Chicago'") from error
    return value


def _format(value: str) -> str:
    if value not in FORMATS:
        raise ValueError(f"{value!r} is not one of: {', '.join(FORMATS)}")
    return value


def _inbox_url(value: str) -> str:
    if not value.startswith("maildir:"):
        parse_server_url(value, ("imap", "imaps"))
    return value


def _outbox_url(value: str) -> str:
    if not value.startswith("maildir:"):
        parse_server_url(value, ("smtp", "smtps"))
    return value


def _hours(value: str) -> str:
    parse_availability(value)
    return value


DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: str) -> str:
    word = value.strip().lower()
    found = [day for day in DAYS if len(word) >= 3 and day.startswith(word)]
    if len(found) != 1:
        raise ValueError(f"{value!r} is not a day of the week; write it like 'monday'")
    return found[0]


def _clock_time(value: str) -> str:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{value!r} is not a time of day; write it like '08:00' (24-hour clock)")
    return f"{int(match[1]):02d}:{match[2]}"


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ZoneName = Annotated[str, AfterValidator(_zone)]
FormatName = Annotated[str, AfterValidator(_format)]
Weekday = Annotated[str, AfterValidator(_weekday)]
ClockTime = Annotated[str, AfterValidator(_clock_time)]
Email = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgrammeSettings(_Strict):
    name: str = "Library Mentoring Programme"
    address: Email
    coordinator: Email
    alert_address: Email | None = None  # a second route for liveness alerts
    cc_coordinator: bool = True
    time_zone: ZoneName = "America/Chicago"
    default_format: FormatName = "video"


class OAuth2Settings(_Strict):
    """OAuth2 (XOAUTH2) for Microsoft 365, through msal (auth.py)."""

    flow: Literal["client_credentials", "device_code"] = "client_credentials"
    tenant: str = Field(min_length=1)  # "library.onmicrosoft.com" or the tenant's GUID
    client_id: str = Field(min_length=1)  # the app registration's Application (client) ID
    client_secret_env: str | None = None  # client_credentials: the variable holding the secret
    token_cache: str = "var/oauth-token-cache.json"  # device_code: written with mode 0600
    authority: str | None = None  # default https://login.microsoftonline.com/TENANT
    scopes: list[str] | None = None  # default: what the flow needs for IMAP and SMTP

    @model_validator(mode="after")
    def _secret_for_client_credentials(self) -> OAuth2Settings:
        if self.flow == "client_credentials" and not self.client_secret_env:
            raise ValueError(
                "flow = 'client_credentials' needs client_secret_env, the name of the "
                "environment variable that holds the app registration's client secret"
            )
        return self


class MailSettings(_Strict):
    inbox: Annotated[str, AfterValidator(_inbox_url)] = "maildir:var/mailbox"
    outbox: Annotated[str, AfterValidator(_outbox_url)] = "maildir:var/outbox"
    password_env: str | None = None  # the variable holding the IMAP (and SMTP) password
    smtp_password_env: str | None = None  # when SMTP has a password of its own
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Settings | None = None
    poll_seconds: float = Field(default=5.0, gt=0)  # Maildir, or an IMAP server without IDLE
    idle_seconds: float = Field(default=240.0, gt=0, le=1740)  # IDLE is re-issued this often
    reconnect_max_seconds: float = Field(default=300.0, gt=0)  # the cap of the reconnect back-off
    timeout_seconds: float = Field(default=60.0, gt=0)  # one network operation
    ca_file: str | None = None  # a CA bundle for a server with a private certificate authority
    processed_folder: str = Field(default="mailflow/processed", min_length=1)
    needs_attention_folder: str = Field(default="mailflow/needs-attention", min_length=1)

    @model_validator(mode="after")
    def _oauth2_settings(self) -> MailSettings:
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError("auth = 'oauth2' needs a [mail.oauth2] table (tenant, client_id, ...)")
        return self


class DeliverySettings(_Strict):
    """How messages leave: over how many connections at once, and how a message the
    outgoing server did not take is tried again."""

    retry_first_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    report_after: Duration = timedelta(hours=1)  # then the coordinator is told (once per message)
    connections: int = Field(default=2, ge=1, le=8)  # messages sent side by side


class PathSettings(_Strict):
    rules: str = "rules"
    templates: str = "templates"
    state: str = "var/state.json"


class SchedulingSettings(_Strict):
    min_notice: Duration = timedelta(days=2)
    horizon: Duration = timedelta(weeks=6)
    shadowing_minutes: int = Field(default=60, ge=15, le=480)
    debrief_after: Duration = timedelta(days=3)
    default_hours: Annotated[str, AfterValidator(_hours)] = "Mon-Fri 09:00-17:00"
    step_minutes: int = Field(default=15, ge=5, le=60)


class SecuritySettings(_Strict):
    secret_env: str = "MAILFLOW_SECRET"
    auto_replies_per_sender_per_day: int = Field(default=10, ge=1)
    require_token: bool = True  # act on a reply only with its reply-address token (or thread)
    require_dmarc: bool = False  # ...and only when the receiving server says dmarc=pass
    authserv_id: str = ""  # whose Authentication-Results header to trust (RFC 8601)
    max_message_bytes: int = Field(default=10_000_000, ge=10_000)


class LivenessSettings(_Strict):
    canary_every: Duration | None = None  # e.g. "1h"; unset: no canary
    canary_deadline: Duration = timedelta(minutes=15)
    alert_outbox: str | None = None  # a second route for alerts, e.g. smtp://other.example.org


class DigestSettings(_Strict):
    enabled: bool = True
    weekday: Weekday = "monday"
    time: ClockTime = "08:00"  # in programme.time_zone
    near_capacity: float = Field(default=0.75, gt=0, le=1)
    stuck_after: Duration = timedelta(days=7)


class ConfigFile(_Strict):
    programme: ProgrammeSettings
    mail: MailSettings = MailSettings()
    paths: PathSettings = PathSettings()
    scheduling: SchedulingSettings = SchedulingSettings()
    security: SecuritySettings = SecuritySettings()
    liveness: LivenessSettings = LivenessSettings()
    delivery: DeliverySettings = DeliverySettings()
    digest: DigestSettings = DigestSettings()


@dataclass(frozen=True)
class Config:
    """The validated config, with paths made absolute."""

    path: Path
    settings: ConfigFile

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def programme(self) -> ProgrammeSettings:
        return self.settings.programme

    @property
    def mail(self) -> MailSettings:
        return self.settings.mail

    @property
    def scheduling(self) -> SchedulingSettings:
        return self.settings.scheduling

    @property
    def security(self) -> SecuritySettings:
        return self.settings.security

    @property
    def liveness(self) -> LivenessSettings:
        return self.settings.liveness

    @property
    def delivery(self) -> DeliverySettings:
        return self.settings.delivery

    @property
    def digest(self) -> DigestSettings:
        return self.settings.digest

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else (self.base / path)

    @property
    def rules_dir(self) -> Path:
        return self.resolve(self.settings.paths.rules)

    @property
    def templates_dir(self) -> Path:
        return self.resolve(self.settings.paths.templates)

    @property
    def state_path(self) -> Path:
        return self.resolve(self.settings.paths.state)

    def mailbox_url(self, url: str) -> str:
        """`maildir:var/mailbox` made absolute against the config's folder."""
        if url.startswith("maildir:"):
            return "maildir:" + str(self.resolve(url.removeprefix("maildir:")))
        return url


def check_config(path: Path) -> tuple[Config | None, list[Issue]]:
    source, issues = TomlSource.load(path)
    if source is None:
        return None, issues
    settings, issues = source.validate(ConfigFile, source.data, label="config")
    if settings is None:
        return None, issues
    return Config(path=path.resolve(), settings=settings), []


def load_config(path: Path) -> Config:
    """Load and validate config.toml; a `ConfigError` lists every problem."""
    if not path.exists():
        raise ConfigError(
            f"{path}: no such file. Copy config.example.toml to {path} and edit it, or pass --config PATH"
        )
    config, issues = check_config(path)
    if config is None:
        raise ConfigError("\n".join(str(issue) for issue in issues))
    return config
