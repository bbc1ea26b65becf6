"""Maildir in and Maildir out: the embedded default, no mail server needed.

The inbox is a Maildir; handled messages are renamed (never copied and deleted) into
its `.processed` and `.needs-attention` subfolders, Dovecot's Maildir++ layout. The
outbox is a Maildir too: each message is written to tmp/ and renamed into new/ under
a name derived from its Message-ID, so writing the same message twice leaves one file.
"""

from __future__ import annotations

import hashlib
import mailbox
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import DeliveryError, MailboxError
from ..model import Outgoing
from .base import Fetched


class MaildirSource:
    def __init__(self, path: str | Path, poll_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.poll_seconds = min(poll_seconds, 1.0)
        try:
            self.maildir = mailbox.Maildir(str(self.path), factory=None, create=True)
        except OSError as error:
            raise MailboxError(f"cannot open the Maildir {self.path}: {error}") from error
        self._wake = threading.Event()

    def fetch(self, limit: int | None = None) -> list[Fetched]:
        entries = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            for entry in os.scandir(folder):
                if entry.is_file() and not entry.name.startswith("."):
                    entries.append((entry.stat().st_mtime, entry.name, folder / entry.name))
        fetched = []
        for _, _, path in sorted(entries)[:limit]:
            try:
                fetched.append(Fetched(key=str(path.relative_to(self.path)), raw=path.read_bytes()))
            except FileNotFoundError:
                continue  # moved away by a person between listing and reading
        return fetched

    def file(self, item: Fetched, folder: str) -> None:
        source = self.path / item.key
        target_dir = self.folder_path(folder) / "cur"
        name = source.name if ":2," in source.name else source.name + ":2,S"
        try:
            os.rename(source, target_dir / name)
        except FileNotFoundError:
            return

    def file_many(self, items: list[Fetched], folder: str) -> None:
        for item in items:
            self.file(item, folder)

    def folder_path(self, folder: str) -> Path:
        path = self.path / f".{folder}"
        if not (path / "cur").is_dir():
            self.maildir.add_folder(folder)
        return path

    def wait(self, timeout: float) -> bool:
        """Poll new/ and cur/ every second (at most) until something is there."""
        remaining = timeout
        while remaining > 0:
            if self._has_mail():
                return True
            step = min(self.poll_seconds, remaining)
            if self._wake.wait(step):
                self._wake.clear()
                return False
            remaining -= step
        return self._has_mail()

    def wake(self) -> None:
        self._wake.set()

    def describe(self) -> str:
        waiting = sum(1 for sub in ("new", "cur") for name in os.listdir(self.path / sub) if name[:1] != ".")
        return f"maildir:{self.path} (polling every {self.poll_seconds:g}s; {waiting} waiting)"

    def _has_mail(self) -> bool:
        return any(not name.startswith(".") for sub in ("new", "cur") for name in os.listdir(self.path / sub))

    def close(self) -> None:
        pass


class MaildirSender:
    remote = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def file_name(self, message_id: str) -> str:
        return hashlib.sha256(message_id.encode()).hexdigest()[:24] + ".mailflow"

    def send(self, outgoing: Outgoing, handed_over: Callable[[], None] | None = None) -> None:
        name = self.file_name(outgoing.message_id)
        if any((self.path / sub / name).exists() for sub in ("new", "cur")) or any(
            p.name.startswith(name + ":") for p in (self.path / "cur").glob(name + ":*")
        ):
            return  # already delivered before a restart
        temporary = self.path / "tmp" / name
        try:
            with open(temporary, "wb") as handle:
                handle.write(outgoing.raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temporary, self.path / "new" / name)
            if handed_over is not None:
                handed_over()
        except OSError as error:
            raise DeliveryError(f"cannot write {outgoing.message_id} to {self.path}: {error}") from error

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"maildir:{self.path}"
