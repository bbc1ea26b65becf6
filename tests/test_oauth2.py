"""OAuth2 (XOAUTH2) for IMAP and SMTP, with msal talking to a local stand-in for
Microsoft Entra ID over HTTPS, and Dovecot checking each token at a local RFC 7662
introspection endpoint. Everything on the wire is real: msal's requests, Dovecot's
oauth2 passdb, smtplib's AUTH XOAUTH2 against aiosmtpd. What is not Microsoft is the
authority itself (tests/servers.py `Authority`) and Exchange Online's own checks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailflow.auth import MsalTokens
from mailflow.cli import main
from mailflow.config import load_config
from mailflow.mailboxes import open_source

from .server_programme import Daemon, ServerProgramme
from .servers import Authority, Certificates, Dovecot, SmtpServer, wait_until
from .test_workflow import TEEN

SECRET_ENV = "MAILFLOW_TEST_CLIENT_SECRET"


@pytest.fixture
def oauth_dovecot(authority: Authority, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    monkeypatch.setenv(SECRET_ENV, authority.client_secret)
    server = Dovecot(users={"mentoring": "unused-password"}, introspection_url=authority.introspection_url)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def oauth_smtp(authority: Authority) -> Iterator[SmtpServer]:
    server = SmtpServer(check_token=authority.valid)
    server.start()
    try:
        yield server
    finally:
        server.close()


def oauth_mail(
    dovecot: Dovecot,
    smtp: SmtpServer,
    authority: Authority,
    *,
    flow: str = "client_credentials",
    extra: str = "",
) -> str:
    secret = f'client_secret_env = "{SECRET_ENV}"\n' if flow == "client_credentials" else ""
    return (
        f'inbox = "{dovecot.url()}"\n'
        f'outbox = "{smtp.url("mentoring")}"\n'
        'auth = "oauth2"\n'
        f'ca_file = "{authority.certificates.ca_file}"\n'
        "idle_seconds = 60\nreconnect_max_seconds = 2\ntimeout_seconds = 10\n" + extra + "\n"
        "[mail.oauth2]\n"
        f'flow = "{flow}"\n'
        f'tenant = "{authority.tenant}"\n'
        f'client_id = "{authority.client_id}"\n' + secret + f'authority = "{authority.url}"\n'
        'token_cache = "var/token-cache.json"\n'
    )


def run_once(programme: ServerProgramme) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--once",
            "--quiet",
            "--now",
            programme.now.isoformat(),
            "--config",
            str(programme.config_path),
        ],
    )
    return result.exit_code, result.output


def test_client_credentials_token_logs_in_to_imap_and_smtp(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, authority: Authority
) -> None:
    programme = ServerProgramme(
        tmp_path, oauth_dovecot, oauth_smtp, mail=oauth_mail(oauth_dovecot, oauth_smtp, authority)
    )
    programme.request("danielle.jones@example.org", TEEN)
    programme.run()
    assert len(oauth_smtp.received) == 2  # acknowledgement and ask
    assert authority.grants == {"client_credentials": 1}  # one token, shared by IMAP and SMTP
    assert oauth_smtp.logins == [("mentoring", "XOAUTH2")]
    assert "method=XOAUTH2" in oauth_dovecot.log() and authority.introspections >= 1
    assert oauth_dovecot.messages("INBOX") == []
    # Neither the secret nor a token is written anywhere mailflow keeps things.
    for path in (tmp_path / "var").rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert authority.client_secret.encode() not in text
            assert not any(token.encode() in text for token in authority.tokens)


def test_a_refused_token_is_replaced_once_and_the_login_retried(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, authority: Authority
) -> None:
    programme = ServerProgramme(
        tmp_path, oauth_dovecot, oauth_smtp, mail=oauth_mail(oauth_dovecot, oauth_smtp, authority)
    )
    config = load_config(programme.config_path)
    tokens = MsalTokens.from_config(config)
    first = open_source(config, tokens=tokens)
    assert first.fetch() == []
    first.close()
    authority.revoke_all()  # e.g. the token was revoked, or the server's clock disagrees
    second = open_source(config, tokens=tokens)  # the cached token looks valid for an hour
    try:
        programme.request("danielle.jones@example.org", TEEN)
        assert len(second.fetch()) == 1
    finally:
        second.close()
    assert authority.grants["client_credentials"] == 2
    assert authority.introspections == 3  # accepted; refused (revoked); accepted (the new token)


def test_the_idle_connection_logs_in_again_before_its_token_expires(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, authority: Authority
) -> None:
    authority.expires_in = 200  # less than the five minutes' margin: every renewal needs a new token
    mail = oauth_mail(oauth_dovecot, oauth_smtp, authority).replace("idle_seconds = 60", "idle_seconds = 0.3")
    programme = ServerProgramme(tmp_path, oauth_dovecot, oauth_smtp, mail=mail)
    with Daemon(programme) as daemon:
        wait_until(lambda: daemon.imap.logins >= 4, what="the IDLE connection to log in again")
        assert authority.grants["client_credentials"] >= 3
        assert oauth_dovecot.connections() <= 2
        programme.request("danielle.jones@example.org", TEEN)
        wait_until(lambda: len(oauth_smtp.received) == 2, what="the acknowledgement and the ask")


def test_device_code_sign_in_keeps_a_private_cache_that_run_uses(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, authority: Authority
) -> None:
    mail = oauth_mail(oauth_dovecot, oauth_smtp, authority, flow="device_code")
    programme = ServerProgramme(tmp_path, oauth_dovecot, oauth_smtp, mail=mail)
    code, output = run_once(programme)
    assert code == 1 and "mailflow auth login" in output  # nobody signed in yet
    output = programme.cli("auth", "login")
    assert "MFLOW123" in output and "Signed in as coordinator@library.org" in output
    cache = tmp_path / "var" / "token-cache.json"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    programme.request("danielle.jones@example.org", TEEN)
    programme.run()
    assert len(oauth_smtp.received) == 2
    assert authority.grants == {"urn:ietf:params:oauth:grant-type:device_code": 1}  # run used the cache
    authority.revoke_all()  # the access token is refused: the refresh token gets a new one
    programme.request("someone@example.org", TEEN)
    programme.run()
    assert len(oauth_smtp.received) == 4
    assert authority.grants["refresh_token"] >= 1


@pytest.mark.parametrize(
    ("failure", "advice"),
    [
        (
            {
                "error": "invalid_grant",
                "error_codes": [65001],
                "error_description": "AADSTS65001: not consented",
            },
            "Grant admin consent",
        ),
        (
            {
                "error": "invalid_client",
                "error_codes": [7000222],
                "error_description": "AADSTS7000222: expired",
            },
            f"client secret has expired. Create a new one under App registrations > "
            f"{Authority.client_id} > Certificates & secrets and put its Value into ${SECRET_ENV}",
        ),
        (
            {
                "error": "invalid_client",
                "error_codes": [7000215],
                "error_description": "AADSTS7000215: wrong",
            },
            "the client secret is wrong",
        ),
    ],
)
def test_the_usual_entra_failures_say_what_to_change(
    tmp_path: Path,
    oauth_dovecot: Dovecot,
    oauth_smtp: SmtpServer,
    authority: Authority,
    failure: dict[str, object],
    advice: str,
) -> None:
    programme = ServerProgramme(
        tmp_path, oauth_dovecot, oauth_smtp, mail=oauth_mail(oauth_dovecot, oauth_smtp, authority)
    )
    authority.fail_with = failure
    code, output = run_once(programme)
    assert code == 1
    assert advice in output
    assert authority.client_secret not in output


def test_a_wrong_tenant_says_so(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, authority: Authority
) -> None:
    mail = (
        oauth_mail(oauth_dovecot, oauth_smtp, authority)
        .replace(f'tenant = "{authority.tenant}"', 'tenant = "wrong.onmicrosoft.com"')
        .replace(f'authority = "{authority.url}"', f'authority = "{authority.base}/wrong.onmicrosoft.com"')
    )
    programme = ServerProgramme(tmp_path, oauth_dovecot, oauth_smtp, mail=mail)
    code, output = run_once(programme)
    assert code == 1
    assert "tenant 'wrong.onmicrosoft.com' is unknown" in output


def test_certificates_fixture_is_a_private_ca(certificates: Certificates) -> None:
    assert certificates.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
