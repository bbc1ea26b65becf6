"""An SMTP server in a process of its own, for the benchmarks: aiosmtpd on 127.0.0.1 that
appends one line per message it accepts to a file:

    <arrival time (time.time())> <Message-ID> <X-Mailflow-Purpose or ->

and keeps the message itself in a Maildir. Run: python bench/sink.py FOLDER; it prints
its port and serves until its standard input closes.
"""

from __future__ import annotations

import mailbox
import socket
import sys
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HEADERS = BytesHeaderParser(policy=compat32)


class Keeper:
    def __init__(self, folder: Path) -> None:
        self.log = open(folder / "received.log", "a", buffering=1)  # noqa: SIM115
        self.maildir = mailbox.Maildir(str(folder / "received"), create=True)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        headers = HEADERS.parsebytes(raw)
        line = (
            f"{time.time():.6f} {headers.get('Message-ID', '-')} {headers.get('X-Mailflow-Purpose', '-')}\n"
        )
        with self.lock:
            self.maildir.add(raw)
            self.log.write(line)
        return "250 2.0.0 OK"


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keeper(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
