"""Hot reload: edits to rules/ and templates/ reach a running daemon, but only once checked.

The daemon never reads the coordinator's folders directly. It runs on a *checked copy*:

    rules/ + templates/ ── read into memory (a snapshot, named by a hash of the bytes)
        ── written to var/programme/<hash>/ ── checked there (checks.check_programme)
              fine ──▶ the engine swaps in the new Ruleset and Renderer; <hash> is recorded in
                       var/programme/current, older copies are removed
              broken ─▶ the copy is removed, the last good set stays in use, and the
                       coordinator is mailed the problems (once per broken version)

Checking and loading the same copy means what was checked is exactly what runs, even
if the coordinator saves again mid-way; and Jinja, which re-reads a changed template
file by itself, only ever sees files that passed. A change is picked up once the
files have been quiet for `settle` seconds, so an editor's half-written save is not
reported as a mistake. At start-up, files that do not pass fall back to the last good
copy (var/programme/current), so a restart does not take the programme down either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from . import __version__
from .checks import check_programme
from .errors import RuleError
from .messages import Messages
from .model import Outgoing, Person
from .render import Renderer, local_time
from .rules import Ruleset, check_rules
from .tomlsource import Issue

log = logging.getLogger(__name__)
SETTLE_SECONDS = 1.0
CURRENT = "current"


@dataclass(frozen=True)
class Snapshot:
    """The coordinator's files as bytes, and when the newest of them was written."""

    files: dict[str, bytes]  # "rules/programme.toml" -> content
    newest: float

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256(f"mailflow {__version__}\0".encode())  # a new mailflow checks afresh
        for name in sorted(self.files):
            hasher.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return hasher.hexdigest()[:16]


@dataclass
class Loaded:
    """The outcome of loading a version of the files."""

    digest: str
    ruleset: Ruleset | None = None
    renderer: Renderer | None = None
    issues: list[Issue] = field(default_factory=list)  # when refused: what is wrong, in the real files

    @property
    def ok(self) -> bool:
        return self.ruleset is not None and self.renderer is not None


class LiveFiles:
    """The rules and templates a daemon runs on, and the check for edits."""

    def __init__(
        self,
        rules_dir: Path,
        templates_dir: Path,
        work_dir: Path,
        *,
        settle: float = SETTLE_SECONDS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.folders = {"rules": rules_dir, "templates": templates_dir}
        self.work_dir = work_dir
        self.settle = settle
        self.wall_clock = wall_clock
        self.current: str | None = None  # the digest of the set in use
        self.refused: str | None = None  # the digest of the last set refused
        self.seen: tuple[str | None, float] = (None, 0.0)  # the newest version seen, and since when

    # -- start-up ----------------------------------------------------------------------------
    def start(self) -> Loaded:
        """The files as they are; when they do not pass, the last good copy, with the problems.

        Raises `RuleError` when the files do not pass and there is no good copy to fall back on.
        """
        snapshot = self.snapshot()
        if snapshot.digest == self._pointer():
            trusted = self._open_copy(snapshot.digest)  # checked when it was made: no need again
            if trusted is not None:
                return trusted
        loaded = self._load(snapshot)
        if loaded.ok:
            return loaded
        fallback = self._last_good()
        if fallback is None or not fallback.ok:
            raise RuleError("\n".join(str(issue) for issue in loaded.issues))
        log.warning("the rules or templates have problems; running on the last good copy %s", fallback.digest)
        self.refused = loaded.digest
        return Loaded(loaded.digest, fallback.ruleset, fallback.renderer, loaded.issues)

    # -- while running -----------------------------------------------------------------------
    def poll(self) -> Loaded | None:
        """A new version to swap in (or to refuse), or None when there is nothing new yet."""
        snapshot = self.snapshot()
        digest = snapshot.digest
        if digest == self.current:
            self.refused = None  # back to the set in use: a later breakage is news again
            return None
        if digest == self.refused:
            return None
        now = self.wall_clock()
        if digest != self.seen[0]:
            self.seen = (digest, now)
        # Quiet: nothing written for `settle` seconds, or the same version seen that long
        # (a file dated in the future by a skewed clock would otherwise never be quiet).
        if now - snapshot.newest < self.settle and now - self.seen[1] < self.settle:
            return None  # still being saved; look again at the next check
        return self._load(snapshot)

    # -- the copies ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        files: dict[str, bytes] = {}
        newest = 0.0
        for label, folder in self.folders.items():
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(folder)
                if not path.is_file() or _ignored(relative):
                    continue
                try:
                    files[f"{label}/{relative.as_posix()}"] = path.read_bytes()
                    newest = max(newest, path.stat().st_mtime)
                except FileNotFoundError:
                    continue  # removed while we looked: the next check sees the result
        return Snapshot(files, newest)

    def _load(self, snapshot: Snapshot) -> Loaded:
        digest = snapshot.digest
        copy = self.work_dir / digest
        if not copy.is_dir():
            _write_copy(copy, snapshot)
        ruleset, renderer, issues = check_programme(copy / "rules", copy / "templates")
        if ruleset is None or renderer is None:
            shutil.rmtree(copy, ignore_errors=True)
            self.refused = digest
            return Loaded(digest, issues=[self._real(issue, copy) for issue in issues])
        self.current, self.refused = digest, None
        _write_atomically(self.work_dir / CURRENT, digest)
        self._remove_old_copies(keep=digest)
        return Loaded(digest, self._real_rules(ruleset, copy), renderer)

    def _last_good(self) -> Loaded | None:
        digest = self._pointer()
        if digest is None:
            return None
        copy = self.work_dir / digest
        ruleset, renderer, _ = check_programme(copy / "rules", copy / "templates")
        if ruleset is None or renderer is None:
            return None  # a newer mailflow finds problems the older one did not
        self.current = digest
        return Loaded(digest, self._real_rules(ruleset, copy), renderer)

    def _open_copy(self, digest: str) -> Loaded | None:
        copy = self.work_dir / digest
        ruleset, issues = check_rules(copy / "rules")
        if ruleset is None or issues:
            return None
        self.current = digest
        return Loaded(digest, self._real_rules(ruleset, copy), Renderer(copy / "templates"))

    def _pointer(self) -> str | None:
        """The digest of the last good copy, when that copy is still there."""
        pointer = self.work_dir / CURRENT
        if not pointer.exists():
            return None
        digest = pointer.read_text(encoding="utf-8").strip()
        return digest if (self.work_dir / digest).is_dir() else None

    def _remove_old_copies(self, keep: str) -> None:
        for entry in self.work_dir.iterdir():
            if entry.is_dir() and entry.name != keep:
                shutil.rmtree(entry, ignore_errors=True)

    # -- naming the coordinator's files, not the copies ----------------------------------------
    def _real_path(self, text: str, copy: Path) -> str:
        for label, folder in self.folders.items():
            text = text.replace(str(copy / label), str(folder))
        return text

    def _real(self, issue: Issue, copy: Path) -> Issue:
        return Issue(self._real_path(issue.path, copy), issue.line, self._real_path(issue.message, copy))

    def _real_rules(self, ruleset: Ruleset, copy: Path) -> Ruleset:
        rules = [replace(rule, file=self._real_path(rule.file, copy)) for rule in ruleset.rules]
        return Ruleset(rules=rules, mentors=ruleset.mentors, defaults=ruleset.defaults)


def refusal_note(
    messages: Messages,
    coordinator: Person,
    issues: list[Issue],
    loaded_at: datetime | None,
    zone: str,
    now: datetime,
) -> Outgoing:
    """The coordinator's email: the edit was not used, what to fix, and what is running instead."""
    return messages.build(
        template="reload_failed",
        purpose="rules refused",
        to=[coordinator],
        now=now,
        context={
            "issues": [str(issue) for issue in issues],
            "loaded_at": f"on {local_time(loaded_at, zone)}" if loaded_at else "at start-up",
        },
    )


def _ignored(relative: Path) -> bool:
    """Hidden files, editor swap and backup files are not part of the programme."""
    name = relative.name
    return (
        any(part.startswith(".") for part in relative.parts)
        or name.endswith(("~", ".swp", ".swo", ".tmp", ".bak"))
        or name.startswith("#")
    )


def _write_copy(copy: Path, snapshot: Snapshot) -> None:
    staging = copy.with_name(f".{copy.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for name, content in snapshot.files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for label in ("rules", "templates"):
        (staging / label).mkdir(parents=True, exist_ok=True)
    os.replace(staging, copy)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)
