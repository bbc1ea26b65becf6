"""The TinyDB storage under the state: kept in memory, written atomically, written cheaply.

`flush` writes the whole file to a temporary file, fsyncs it and renames it over the
old one (keeping the previous good file as `.prev`), so a crash at any moment leaves
either the old or the new state. TinyDB's own JSONStorage rewrites the file in place,
which a crash can tear.

Writing the whole file each commit is what keeps it atomic, and it would make every
commit cost as much as the largest table. So the big tables (`FRAGMENTED`) keep each
document's JSON text between commits and re-encode only the documents marked with
`touch`: a commit costs what changed, not what is stored. Whoever changes a document
of those tables in place must `touch` it (the Store does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from .errors import StateError

FRAGMENTED = ("requests", "outbox", "seen")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class AtomicJSONStorage(Storage):
    def __init__(self, path: str, keep_previous: bool = True) -> None:
        self.path = Path(path)
        self.keep_previous = keep_previous
        self._data: dict[str, dict[str, Any]] | None = None
        self._fragments: dict[str, dict[str, str]] = {}
        self._touched: dict[str, set[str]] = {}
        self.dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def table(self, name: str) -> dict[str, Any]:
        """The raw documents of a table (TinyDB replaces this dict on its own writes:
        fetch it again rather than keep it)."""
        data = self.read()
        assert data is not None
        return data.setdefault(name, {})

    def touch(self, table: str, key: str) -> None:
        """A document was added or changed: encode it again at the next flush."""
        self._touched.setdefault(table, set()).add(key)
        self.dirty = True

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError) as error:
            previous = self.path.with_name(self.path.name + ".prev")
            hint = (
                f" The last good copy is {previous}: inspect both, then copy it over {self.path.name}."
                if previous.exists()
                else ""
            )
            raise StateError(
                f"{self.path} is damaged and cannot be read ({error}).{hint} Nothing was changed."
            ) from error
        if not isinstance(data, dict):
            raise StateError(f"{self.path} does not hold a mailflow state (not a JSON object)")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        self.dirty = True

    def encode(self) -> str:
        data = self.read() or {}
        parts = []
        for name, documents in data.items():
            if name not in FRAGMENTED:
                parts.append(f"{_dumps(name)}:{_dumps(documents)}")
                continue
            cache = self._fragments.setdefault(name, {})
            touched = self._touched.pop(name, set())
            pieces = []
            for key, document in documents.items():
                text = cache.get(key)
                if text is None or key in touched:
                    text = cache[key] = _dumps(document)
                pieces.append(f"{_dumps(key)}:{text}")
            if len(cache) > len(documents):
                for key in [k for k in cache if k not in documents]:
                    del cache[key]
            parts.append(f"{_dumps(name)}:{{{','.join(pieces)}}}")
        return "{" + ",".join(parts) + "}"

    def flush(self) -> None:
        if not self.dirty or self._data is None:
            return
        text = self.encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if self.keep_previous and self.path.exists():
            previous = self.path.with_name(self.path.name + ".prev")
            link = self.path.with_name(f".{self.path.name}.prev.tmp")
            link.unlink(missing_ok=True)
            os.link(self.path, link)
            os.replace(link, previous)
        os.replace(temporary, self.path)
        fsync_dir(self.path.parent)
        self.dirty = False

    def close(self) -> None:
        pass


def fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
