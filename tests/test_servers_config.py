"""Mail server URLs, the [mail] settings and the back-off: read strictly, explained clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.backoff import Backoff, delay
from mailflow.config import check_config
from mailflow.servers import parse_server_url

from .programme import CONFIG, REPO


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "user", "folder", "loopback"),
    [
        ("imaps://mentoring@library.org@outlook.office365.com/INBOX", "imaps", "outlook.office365.com", 993,
         "mentoring@library.org", "INBOX", False),
        ("imap://mentoring%40library.org@imap.library.org", "imap", "imap.library.org", 143,
         "mentoring@library.org", "INBOX", False),
        ("imap://mentoring@127.0.0.1:1143/Mentoring/Requests", "imap", "127.0.0.1", 1143, "mentoring",
         "Mentoring/Requests", True),
        ("smtp://mentoring@library.org@smtp.office365.com:587", "smtp", "smtp.office365.com", 587,
         "mentoring@library.org", "", False),
        ("smtps://smtp.gmail.com", "smtps", "smtp.gmail.com", 465, None, "", False),
        ("smtp://localhost:2525", "smtp", "localhost", 2525, None, "", True),
    ],
)  # fmt: skip
def test_server_urls(
    url: str, scheme: str, host: str, port: int, user: str | None, folder: str, loopback: bool
) -> None:
    address = parse_server_url(url, ("imap", "imaps", "smtp", "smtps"))
    assert (address.scheme, address.host, address.port, address.user, address.folder) == (
        scheme,
        host,
        port,
        user,
        folder,
    )
    assert address.loopback is loopback
    assert address.implicit_tls is scheme.endswith("s")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("imap://mentoring:hunter2@imap.library.org/INBOX", "a password does not belong in the URL"),
        ("pop3://mentoring@pop.library.org", "should start with 'imap://' or 'imaps://'"),
        ("imaps:///INBOX", "names no server"),
        ("imaps://mentoring@host/INBOX?tls=no", "remove the '?…'"),
    ],
)
def test_bad_server_urls_say_what_to_write(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_server_url(url, ("imap", "imaps"))
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def write_config(tmp_path: Path, mail: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(templates=REPO / "templates", mail=mail, programme_lines="") + extra)
    return path


@pytest.mark.parametrize(
    ("mail", "problem"),
    [
        ('inbox = "imap://u:secret@host/INBOX"', "a password does not belong in the URL"),
        ('auth = "oauth2"', "needs a [mail.oauth2] table"),
        ('auth = "oauth2"\n[mail.oauth2]\ntenant = "t"\nclient_id = "c"', "needs client_secret_env"),
        ("idle_seconds = 3600", "'mail.idle_seconds'"),
        ("idle_secs = 60", "did you mean 'idle_seconds'?"),
    ],
)
def test_mail_settings_are_checked_early(tmp_path: Path, mail: str, problem: str) -> None:
    config, issues = check_config(write_config(tmp_path, mail))
    assert config is None
    text = "\n".join(str(issue) for issue in issues)
    assert problem in text
    assert "secret@" not in text


def test_an_oauth2_config_for_microsoft_365_is_accepted(tmp_path: Path) -> None:
    mail = (
        'inbox = "imaps://mentoring@library.org@outlook.office365.com/INBOX"\n'
        'outbox = "smtp://mentoring@library.org@smtp.office365.com:587"\n'
        'auth = "oauth2"\n'
        "[mail.oauth2]\n"
        'tenant = "library.onmicrosoft.com"\n'
        'client_id = "11111111-2222-3333-4444-555555555555"\n'
        'client_secret_env = "MAILFLOW_CLIENT_SECRET"\n'
    )
    config, issues = check_config(write_config(tmp_path, mail, '\n[delivery]\nreport_after = "2h"\n'))
    assert issues == [] and config is not None
    assert config.mail.oauth2 is not None and config.mail.oauth2.flow == "client_credentials"
    assert config.delivery.report_after.total_seconds() == 7200


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [delay(n, 1, 30) for n in range(0, 8)] == [0, 1, 2, 4, 8, 16, 30, 30]
    backoff = Backoff(first=0.5, cap=2)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1, 2, 2]
    backoff.reset()
    assert backoff.next_delay() == 0.5
