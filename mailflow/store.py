"""State: TinyDB files under var/, written atomically, owned by one process.

    var/state.json          open requests, the outbox, seen messages, mentor ledger, log
    var/state.json.prev     the previous good state (a corrupt state.json is never lost work)
    var/state.json.sent     Message-IDs delivered since the last commit (append-only)
    var/state.json.lock     held by the process that owns the state
    var/archive/YYYY-MM.json  closed and cancelled requests, by the month they ended
    var/relationships.jsonl mentor/protégé pairs that finished a mentoring (append-only)

Changes are staged in memory and written by `commit()`: the whole file goes to a
temporary file, is fsynced and renamed over the old one, so a crash at any moment
leaves either the old or the new state. Only open requests live in state.json, so
the cost of a commit grows with the programme's current work, not with its history.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import TypeAdapter
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

from .errors import StateError
from .match import Load
from .model import Outgoing, Request, State
from .tokens import ALPHABET

_REQUEST = TypeAdapter(Request)
SEEN_RETENTION = timedelta(days=30)
LOG_RETENTION = 2000


class AtomicJSONStorage(Storage):
    """A TinyDB storage kept in memory and written only by `flush`, by write-and-rename."""

    def __init__(self, path: str, keep_previous: bool = True) -> None:
        self.path = Path(path)
        self.keep_previous = keep_previous
        self._data: dict[str, dict[str, Any]] | None = None
        self.dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

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

    def flush(self) -> None:
        if not self.dirty or self._data is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(self._data, handle, separators=(",", ":"), ensure_ascii=False)
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
        _fsync_dir(self.path.parent)
        self.dirty = False

    def close(self) -> None:
        pass


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def doc_id(ref: str) -> int:
    """MM-7F3K2 -> a stable TinyDB document id."""
    number = 0
    for char in ref.upper().removeprefix("MM-"):
        number = number * 32 + ALPHABET.index(char)
    return number + 1


@dataclass(frozen=True)
class DeliveryAttempts:
    """How delivering one outbox message has gone so far."""

    count: int
    first_failure: datetime | None
    error: str
    reported: bool


@dataclass
class SeenMessage:
    key: str
    at: datetime
    outcome: str
    folder: str
    ref: str | None


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_handle = None if readonly else self._lock()
        self.db = TinyDB(str(path), storage=AtomicJSONStorage)
        self.storage: AtomicJSONStorage = self.db.storage  # type: ignore[assignment]
        self.storage.read()
        self.requests = self.db.table("requests", cache_size=0)
        self.outbox = self.db.table("outbox", cache_size=0)
        self.seen = self.db.table("seen", cache_size=0)
        self.ledger = self.db.table("ledger", cache_size=0)
        self.log_table = self.db.table("log", cache_size=0)
        self.meta = self.db.table("meta", cache_size=0)
        self.archive_dir = path.parent / "archive"
        self.relationships_path = path.parent / "relationships.jsonl"
        self.sent_journal = path.with_name(path.name + ".sent")
        self._message_refs: dict[str, str] = {}
        self._relationships: dict[str, set[str]] | None = None
        self._archived_refs: dict[str, str] | None = None
        for doc in self.requests.all():
            for message_id in doc.get("message_ids", []):
                self._message_refs[message_id] = doc["ref"]
        self._apply_sent_journal()

    # -- ownership -------------------------------------------------------------
    def _lock(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise StateError(
                f"{self.path} is in use by mailflow (pid {owner}); stop that "
                "process first, or point --config at another state"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def close(self) -> None:
        if not self.readonly:
            self.commit()
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------
    def get(self, ref: str) -> Request | None:
        doc = self.requests.get(doc_id=doc_id(ref))
        return _REQUEST.validate_python(dict(doc)) if doc else None

    def find(self, ref: str) -> Request | None:
        """A request, open or archived."""
        found = self.get(ref)
        if found is not None:
            return found
        month = self._archive_index().get(ref)
        if month is None:
            return None
        data = AtomicJSONStorage(str(self.archive_dir / f"{month}.json")).read() or {}
        doc = data.get("requests", {}).get(str(doc_id(ref)))
        return _REQUEST.validate_python(doc) if doc else None

    def put(self, request: Request) -> None:
        data = _REQUEST.dump_python(request, mode="json")
        self.requests.upsert(Document(data, doc_id=doc_id(request.ref)))
        for message_id in request.message_ids:
            self._message_refs[message_id] = request.ref

    def ref_taken(self, ref: str) -> bool:
        return self.requests.contains(doc_id=doc_id(ref)) or ref in self._archive_index()

    def _archive_index(self) -> dict[str, str]:
        """Reference -> archive month, read once from archive/index.txt (append-only)."""
        if self._archived_refs is None:
            self._archived_refs = {}
            index = self.archive_dir / "index.txt"
            if index.exists():
                for line in index.read_text(encoding="utf-8").splitlines():
                    ref, _, month = line.partition(" ")
                    if month:
                        self._archived_refs[ref] = month
        return self._archived_refs

    def ref_for_message(self, message_id: str) -> str | None:
        return self._message_refs.get(message_id.strip())

    def open_requests(self) -> list[Request]:
        return [
            _REQUEST.validate_python(dict(doc))
            for doc in self.requests.all()
            if doc["state"] not in (State.CLOSED, State.CANCELLED)
        ]

    def due(self, now: datetime) -> list[str]:
        """References of open requests whose timer is due, oldest first."""
        due = []
        for doc in self.requests.all():
            timer = doc.get("timer")
            if timer and _time(timer["due"]) <= now:
                due.append((_time(timer["due"]), doc["ref"]))
        return [ref for _, ref in sorted(due)]

    def next_due(self) -> datetime | None:
        times = [_time(doc["timer"]["due"]) for doc in self.requests.all() if doc.get("timer")]
        return min(times) if times else None

    def archived(self) -> Iterator[Request]:
        if not self.archive_dir.exists():
            return
        for path in sorted(self.archive_dir.glob("*.json")):
            data = AtomicJSONStorage(str(path)).read() or {}
            for doc in data.get("requests", {}).values():
                yield _REQUEST.validate_python(doc)

    # -- the outbox ------------------------------------------------------------
    def queue(self, outgoing: Outgoing, at: datetime) -> None:
        self.outbox.insert(
            {
                "message_id": outgoing.message_id,
                "ref": outgoing.ref,
                "purpose": outgoing.purpose,
                "recipients": outgoing.recipients,
                "raw": base64.b64encode(outgoing.raw).decode(),
                "queued": at.isoformat(),
                "attempts": 0,
                "error": "",
            }
        )

    def pending(self, now: datetime | None = None) -> list[Outgoing]:
        """Messages waiting to be sent, oldest first; with `now`, only those due by then."""
        return [
            Outgoing(
                doc["message_id"],
                doc["ref"],
                doc["purpose"],
                doc["recipients"],
                base64.b64decode(doc["raw"]),
            )
            for doc in self.outbox.all()
            if now is None or not doc.get("next_attempt") or _time(doc["next_attempt"]) <= now
        ]

    def outbox_entries(self) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self.outbox.all()]

    def next_attempt(self) -> datetime | None:
        """When the earliest message held back after a failure is due to be tried again."""
        times = [_time(doc["next_attempt"]) for doc in self.outbox.all() if doc.get("next_attempt")]
        return min(times) if times else None

    def mark_sent(self, message_id: str) -> None:
        """Record a delivery at once (append + fsync), before anything else can happen."""
        with open(self.sent_journal, "a", encoding="utf-8") as handle:
            handle.write(message_id + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.outbox.remove(Query().message_id == message_id)

    def mark_failed(
        self, message_id: str, error: str, *, at: datetime | None = None, next_attempt: datetime | None = None
    ) -> DeliveryAttempts | None:
        """Count a failed attempt; the message is not tried again before `next_attempt`."""
        for doc in self.outbox.search(Query().message_id == message_id):
            changes: dict[str, Any] = {"attempts": doc["attempts"] + 1, "error": error[:300]}
            if at is not None and not doc.get("first_failure"):
                changes["first_failure"] = at.isoformat()
            if next_attempt is not None:
                changes["next_attempt"] = next_attempt.isoformat()
            self.outbox.update(changes, doc_ids=[doc.doc_id])
            return self.attempts(message_id)
        return None

    def attempts(self, message_id: str) -> DeliveryAttempts | None:
        doc = self.outbox.get(Query().message_id == message_id)
        if not doc:
            return None
        first = doc.get("first_failure")
        return DeliveryAttempts(
            count=doc["attempts"],
            first_failure=_time(first) if first else None,
            error=doc.get("error", ""),
            reported=bool(doc.get("reported")),
        )

    def mark_reported(self, message_id: str) -> None:
        """The coordinator has been told about this message (told once, not at every retry)."""
        self.outbox.update({"reported": True}, Query().message_id == message_id)

    def _apply_sent_journal(self) -> None:
        if not self.sent_journal.exists():
            return
        sent = set(self.sent_journal.read_text(encoding="utf-8").split())
        if sent:
            self.outbox.remove(Query().message_id.one_of(list(sent)))

    # -- incoming messages -----------------------------------------------------
    def seen_message(self, key: str) -> SeenMessage | None:
        doc = self.seen.get(Query().key == key)
        if not doc:
            return None
        return SeenMessage(doc["key"], _time(doc["at"]), doc["outcome"], doc["folder"], doc["ref"])

    def remember(self, key: str, at: datetime, outcome: str, folder: str, ref: str | None) -> None:
        self.seen.upsert(
            {"key": key, "at": at.isoformat(), "outcome": outcome, "folder": folder, "ref": ref},
            Query().key == key,
        )

    # -- the decision log (decisions not tied to one request) ---------------------
    def log(
        self, at: datetime, what: str, reason: str, *, message_id: str = "", ref: str | None = None
    ) -> None:
        self.log_table.insert(
            {
                "at": at.isoformat(),
                "what": what,
                "reason": reason,
                "message_id": message_id,
                "ref": ref,
            }
        )

    def recent_log(self, limit: int = 50) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self.log_table.all()[-limit:]]

    # -- mentors' load and relationships ---------------------------------------
    def book(self, ref: str, mentor: str, start: datetime, minutes: int) -> None:
        self.ledger.insert({"ref": ref, "mentor": mentor, "start": start.isoformat(), "minutes": minutes})

    def unbook(self, ref: str, after: datetime | None = None) -> None:
        self.ledger.remove(lambda doc: doc["ref"] == ref and (after is None or _time(doc["start"]) > after))

    def booked(self, mentor: str, *, excluding: str | None = None) -> list[tuple[datetime, datetime]]:
        """The mentor's sessions booked through mailflow (recent and upcoming), except
        those of the request `excluding` (its own sessions, when they are being moved)."""
        return [
            (_time(doc["start"]), _time(doc["start"]) + timedelta(minutes=doc["minutes"]))
            for doc in self.ledger.all()
            if doc["mentor"] == mentor and doc["ref"] != excluding
        ]

    def mentor_load(self, now: datetime) -> dict[str, Load]:
        """Minutes booked in the current month and requests in hand, per mentor."""
        loads: dict[str, Load] = {}
        for doc in self.ledger.all():
            start = _time(doc["start"])
            if (start.year, start.month) == (now.year, now.month):
                loads.setdefault(doc["mentor"], Load()).minutes_this_month += doc["minutes"]
        for doc in self.requests.all():
            state = doc["state"]
            if state == State.ASKING and doc["asks"] and doc["asks"][-1]["outcome"] is None:
                mentor = doc["asks"][-1]["mentor"]
                load = loads.setdefault(mentor, Load())
                load.active += 1
                budget = doc["form"].get("budget")
                if budget:
                    load.minutes_this_month += sum(s["minutes"] for s in budget["sessions"])
            elif state == State.INTRODUCED and doc.get("mentor"):
                loads.setdefault(doc["mentor"]["email"], Load()).active += 1
        return loads

    def known_mentors(self, protege: str) -> set[str]:
        if self._relationships is None:
            self._relationships = {}
            if self.relationships_path.exists():
                for line in self.relationships_path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        self._relationships.setdefault(entry["protege"], set()).add(entry["mentor"])
        return set(self._relationships.get(protege.lower(), set()))

    def remember_pairing(self, protege: str, mentor: str, ref: str, at: datetime) -> None:
        """Appended before the request closes, so a crash can only repeat it (harmless)."""
        with open(self.relationships_path, "a", encoding="utf-8") as handle:
            handle.write(
                json.dumps(
                    {
                        "protege": protege.lower(),
                        "mentor": mentor.lower(),
                        "ref": ref,
                        "at": at.isoformat(),
                    }
                )
                + "\n"
            )
            handle.flush()
            os.fsync(handle.fileno())
        if self._relationships is not None:
            self._relationships.setdefault(protege.lower(), set()).add(mentor.lower())

    # -- meta --------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        doc = self.meta.get(Query().key == key)
        return doc["value"] if doc else default

    def set_meta(self, key: str, value: Any) -> None:
        self.meta.upsert({"key": key, "value": value}, Query().key == key)

    # -- commit ------------------------------------------------------------------
    def commit(self, now: datetime | None = None) -> None:
        """Write everything staged; archive finished requests; prune old bookkeeping."""
        if self.readonly:
            raise StateError("this store was opened read-only")
        now = now or datetime.now(UTC)
        self._archive_finished(now)
        cutoff = (now - SEEN_RETENTION).isoformat()
        if any(doc["at"] < cutoff for doc in self.seen.all()):
            self.seen.remove(lambda doc: doc["at"] < cutoff)
        if len(self.log_table) > LOG_RETENTION:
            extra = self.log_table.all()[: len(self.log_table) - LOG_RETENTION]
            self.log_table.remove(doc_ids=[doc.doc_id for doc in extra])
        month_start = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=40)
        if any(_time(doc["start"]) < month_start for doc in self.ledger.all()):
            self.ledger.remove(lambda doc: _time(doc["start"]) < month_start)
        self.storage.flush()
        self.sent_journal.unlink(missing_ok=True)

    def _archive_finished(self, now: datetime) -> None:
        finished: list[Document] = [
            doc for doc in self.requests.all() if doc["state"] in (State.CLOSED, State.CANCELLED)
        ]
        if not finished:
            return
        by_month: dict[str, list[Document]] = {}
        for doc in finished:
            ended = _time(doc["history"][-1]["at"]) if doc["history"] else now
            by_month.setdefault(f"{ended:%Y-%m}", []).append(doc)
        for month, docs in by_month.items():
            archive = TinyDB(str(self.archive_dir / f"{month}.json"), storage=AtomicJSONStorage)
            table = archive.table("requests", cache_size=0)
            for doc in docs:
                table.upsert(Document(dict(doc), doc_id=doc.doc_id))
            archive.storage.flush()  # type: ignore[attr-defined]
        index = self._archive_index()
        with open(self.archive_dir / "index.txt", "a", encoding="utf-8") as handle:
            for month, docs in by_month.items():
                for doc in docs:
                    handle.write(f"{doc['ref']} {month}\n")
                    index[doc["ref"]] = month
            handle.flush()
            os.fsync(handle.fileno())
        self.requests.remove(doc_ids=[doc.doc_id for doc in finished])


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
