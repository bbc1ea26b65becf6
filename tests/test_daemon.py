"""`mailflow run` as a process: the health line at start, SIGTERM and SIGINT handled
cleanly (connections closed, exit 0), one log line per decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import IMAP_PASSWORD
from .server_programme import ServerProgramme
from .servers import Dovecot, SmtpServer, wait_until
from .test_workflow import TEEN


class Process:
    """`python -m mailflow run`, its output collected line by line."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mailflow", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "MAILFLOW_TEST_IMAP_PASSWORD": IMAP_PASSWORD},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_daemon_cleanly_after_a_health_line(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer, signum: int
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    process = Process(programme.config_path)
    try:
        wait_until(lambda: process.saw("mailflow 0.1.0: inbox"), what="the health line")
        wait_until(lambda: dovecot.connections() == 2, what="two IMAP connections")
        programme.request("danielle.jones@example.org", TEEN)
        wait_until(lambda: len(smtp_server.received) == 2, what="the acknowledgement and the ask")
        process.popen.send_signal(signum)
        assert process.popen.wait(timeout=15) == 0, process.output()
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
    process.reader.join(timeout=5)
    (health,) = [line for line in process.lines if "mailflow 0.1.0: inbox" in line]
    assert (
        f"inbox imap://mentoring@127.0.0.1:{dovecot.port}/INBOX (plain text on loopback, password, IDLE"
        in health
    )
    assert "filing into mailflow.processed and mailflow.needs-attention" in health
    assert f"outbox smtp://127.0.0.1:{smtp_server.port} (plain text on loopback, no login)" in health
    assert "0 open request(s), 0 message(s) to send" in health
    output = process.output()
    assert "new request MM-" in output and "sent acknowledgement to danielle.jones@example.org" in output
    assert "stopping" in output
    assert IMAP_PASSWORD not in output
    wait_until(lambda: dovecot.connections() == 0, what="the IMAP connections to close")


def test_an_unreachable_inbox_at_start_is_named_and_the_daemon_keeps_trying(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    dovecot.stop()
    process = Process(programme.config_path)
    try:
        wait_until(lambda: process.saw("inbox UNREACHABLE"), what="the health line")
        dovecot.start()
        programme.request("danielle.jones@example.org", TEEN)
        wait_until(lambda: len(smtp_server.received) == 2, timeout=20, what="the acknowledgement and the ask")
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=15) == 0, process.output()
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
