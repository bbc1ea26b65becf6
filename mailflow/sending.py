"""A sending process: one outgoing connection, in a child process of its own.

Sending over SMTP is mostly waiting for the server, and what is not waiting is Python
code that, in the engine's process, would compete with deciding the next batch for the
interpreter lock. In a child process it competes with nothing, so a backlog's
deciding and sending really run side by side (bench/throughput.py measures it).

The child is forked with the sender already set up (no pickling of credentials or
token caches), serves one message at a time over a pipe, and writes the sent-journal
line itself between the message's last byte and the server's answer, exactly as the
in-process path does (store.handed_over). It dies with its parent (Linux
PR_SET_PDEATHSIG), so a killed daemon leaves no child sending on behalf of nobody,
and it never logs (a lock another thread held at fork time could block it).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .errors import DeliveryError, PartlyDelivered
from .mailboxes import MailSender
from .model import Outgoing

PR_SET_PDEATHSIG = 1


class SendingProcess:
    def __init__(self, sender: MailSender, journal: Path) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(sender, journal, child, os.getpid()), name="mailflow-sender", daemon=True
        )
        self.process.start()
        child.close()

    def send(self, outgoing: Outgoing) -> tuple[bool, DeliveryError | None]:
        """(handed over, error): what happened to one message; the child did the sending."""
        try:
            self._conn.send(
                (outgoing.message_id, outgoing.ref, outgoing.purpose, outgoing.recipients, outgoing.raw)
            )
            handed_over, error = self._conn.recv()
        except (EOFError, OSError) as lost:
            return False, DeliveryError(f"the sending process ended: {lost or 'no answer'}", route_down=True)
        return handed_over, _error(error)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._conn.close()


def _serve(sender: MailSender, journal: Path, conn: Connection, parent: int) -> None:
    """The child: send what comes down the pipe until told to stop or the parent is gone."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)  # the parent decides when sending stops
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(0)
    # Inherited descriptors (the inbox's connections, a test's listening sockets) are not
    # ours to keep open: only the pipe and the standard streams stay.
    keep = conn.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    try:
        while True:
            try:
                item = conn.recv()
            except (EOFError, OSError):
                return
            if item is None:
                return
            message_id, ref, purpose, recipients, raw = item
            noted: list[bool] = []

            def handed_over(message_id: str = message_id, noted: list[bool] = noted) -> None:
                descriptor = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(descriptor, (message_id + "\n").encode())
                finally:
                    os.close(descriptor)
                noted.append(True)

            error: tuple[Any, ...] | None = None
            try:
                sender.send(Outgoing(message_id, ref, purpose, recipients, raw), handed_over=handed_over)
            except PartlyDelivered as partly:
                error = ("partly", str(partly), partly.refused)
            except DeliveryError as failure:
                error = ("failed", str(failure), failure.permanent, failure.route_down)
            except Exception as failure:  # reported to the parent, never lost
                error = ("failed", f"{type(failure).__name__}: {failure}", False, True)
            conn.send((bool(noted), error))
    finally:
        sender.close()
        os._exit(0)  # no finalizers: objects inherited from the parent must not close anything


def _error(error: tuple[Any, ...] | None) -> DeliveryError | None:
    if error is None:
        return None
    if error[0] == "partly":
        return PartlyDelivered(error[1], refused=error[2])
    return DeliveryError(error[1], permanent=error[2], route_down=error[3])
