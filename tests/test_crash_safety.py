"""Killed at the worst moment: over real Dovecot and SMTP, `mailflow run` is SIGKILLed at
random moments while it works through a backlog of requests and the mentors' replies.
At the end every request is where it should be, the SMTP server has received every
message exactly once (by Message-ID), and the inbox holds nothing unprocessed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mailflow.correspondent import purpose, read, reply
from mailflow.model import Person, State
from mailflow.store import Store
from mailflow.tokens import find_ref

from .programme import REPO, request_mail
from .server_programme import ServerProgramme
from .servers import Dovecot, SmtpServer, wait_until

REQUESTS = int(os.environ.get("MAILFLOW_FAULT_REQUESTS", "200"))
ROUNDS = int(os.environ.get("MAILFLOW_FAULT_ROUNDS", "20"))
MENTORS = 12


def write_rules(folder: Path) -> Path:
    """Mentors with room for the whole backlog, and one rule that asks any of them."""
    folder.mkdir()
    mentors = []
    for n in range(MENTORS):
        mentors.append(
            f'[[mentor]]\nemail = "mentor{n}@example.org"\nname = "Mentor {n}"\n'
            f'skills = ["programming"]\ntime_zone = "America/Chicago"\n'
            f'availability = ["Mon-Fri 08:00-18:00"]\nmax_hours_per_month = 500\nmax_active = 100\n'
        )
    (folder / "mentors.toml").write_text("\n".join(mentors))
    (folder / "rules.toml").write_text('[[rule]]\nname = "Anyone"\nrank = ["least_loaded"]\n')
    return folder


class Mentors:
    """The mentors at their mail clients: every ask gets an answer; for one request in five
    the first mentor declines (the next one accepts)."""

    def __init__(self, dovecot: Dovecot, smtp: SmtpServer, rng: random.Random) -> None:
        self.dovecot, self.smtp, self.rng = dovecot, smtp, rng
        self.answered: set[str] = set()
        self.declined: set[str] = set()  # references
        self.replies = 0

    def answer(self) -> None:
        for raw in self.smtp.messages():
            message = read(raw)
            message_id = str(message["Message-ID"])
            if purpose(message) != "ask" or message_id in self.answered:
                continue
            self.answered.add(message_id)
            mentor = message["To"].addresses[0]
            ref = find_ref(str(message["Subject"])) or ""
            decline = ref not in self.declined and self.rng.random() < 0.2
            self.declined.add(ref)
            text = "decline - not this month" if decline else "accept"
            self.dovecot.append(
                reply(message, Person(mentor.addr_spec, mentor.display_name), text, when=_now())
            )
            self.replies += 1


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_killed_at_random_moments_nothing_is_lost_or_sent_twice(
    dovecot: Dovecot, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("MAILFLOW_FAULT_SEED", "20261128")))
    programme = ServerProgramme(tmp_path, dovecot, smtp_server, rules=write_rules(tmp_path / "rules-src"))
    for n in range(REQUESTS):
        body = f"Topic: a small question number {n}\nTime budget: 30 minutes\nFormat: video\n"
        dovecot.append(request_mail(f"protege{n}@example.org", body, when=_now().isoformat()))
    mentors = Mentors(dovecot, smtp_server, rng)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "mailflow", "run", "--quiet", "--config", str(programme.config_path)]
    log = tmp_path / "daemon.log"
    kills = []
    for _ in range(ROUNDS):
        with open(log, "ab") as sink:
            daemon = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        moment = rng.uniform(0.3, 3.0)
        time.sleep(moment)  # the random moment of the kill, not a wait for anything
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        kills.append(round(moment, 2))
        mentors.answer()
    state = programme.root / "var" / "state.json"

    def finished() -> bool:
        mentors.answer()
        with Store(state, readonly=True) as store:
            requests = store.open_requests()
        return (
            len(requests) == REQUESTS
            and all(r.state is State.INTRODUCED for r in requests)
            and not dovecot.messages("INBOX")
        )

    with open(log, "ab") as sink:
        daemon = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
    try:
        wait_until(finished, timeout=240, what="every request introduced after the kills")
    except AssertionError:
        with Store(state, readonly=True) as store:
            states = Counter(r.state.value for r in store.open_requests())
            outbox = len(store.outbox_entries())
        inbox = len(dovecot.messages("INBOX"))
        tail = log.read_text(errors="replace")[-3000:]
        raise AssertionError(
            f"states {dict(states)}, outbox {outbox}, inbox {inbox}, kills {kills}\n{tail}"
        ) from None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)

    counts = smtp_server.message_ids()
    twice = {message_id: n for message_id, n in counts.items() if n > 1}
    assert not twice, f"sent more than once: {twice} (kills at {kills})"
    with Store(state, readonly=True) as store:
        requests = store.open_requests()
    assert sorted(r.protege.email for r in requests) == sorted(
        f"protege{n}@example.org" for n in range(REQUESTS)
    )
    by_purpose = Counter(purpose(read(raw)) for raw in smtp_server.messages())
    assert by_purpose["acknowledgement"] == REQUESTS
    assert by_purpose["introduction"] == REQUESTS
    assert by_purpose["ask"] == REQUESTS + by_purpose["withdrawal"] + sum(
        1 for r in requests for a in r.asks if a.outcome == "declined"
    )
    assert dovecot.messages("INBOX") == []
    assert len(dovecot.messages("mailflow.processed")) == REQUESTS + mentors.replies
    assert dovecot.messages("mailflow.needs-attention") == []
