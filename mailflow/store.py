"""State: TinyDB files under var/, written atomically, owned by one process.

    var/state.json          open requests, the outbox, seen messages, mentor ledger, log
    var/state.json.prev     the previous good state (a corrupt state.json is never lost work)
    var/state.json.sent     Message-IDs handed to the outgoing server since the last commit
    var/state.json.lock     held by the process that owns the state
    var/archive/YYYY-MM.json  closed and cancelled requests, by the month they ended
    var/archive/index.txt   reference -> archive month (append-only)
    var/relationships.jsonl mentor/protégé pairs that finished a mentoring (append-only)

Changes are staged in memory and written by `commit()` (storage.py: temporary file,
fsync, rename). Only open requests live in state.json and the lookups a message needs
(a request by reference, a message seen before, an outbox entry, a mentor's load) are
by key or kept up to date as requests change, so the cost of handling a message
grows neither with the programme's history nor with the size of its backlog.
"""

from __future__ import annotations

import base64
import fcntl
import gc
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import TypeAdapter
from tinydb import Query, TinyDB
from tinydb.table import Document

from .errors import StateError
from .match import Load
from .model import Outgoing, Request, State
from .storage import AtomicJSONStorage
from .tokens import ALPHABET

_REQUEST = TypeAdapter(Request)
SEEN_RETENTION = timedelta(days=30)
LOG_RETENTION = 2000
FINISHED = (State.CLOSED.value, State.CANCELLED.value)

__all__ = ["AtomicJSONStorage", "DeliveryAttempts", "SeenMessage", "Store", "doc_id"]


def doc_id(ref: str) -> int:
    """MM-7F3K2 -> a stable TinyDB document id."""
    number = 0
    for char in ref.upper().removeprefix("MM-"):
        number = number * 32 + ALPHABET.index(char)
    return number + 1


def key_id(text: str) -> str:
    """A stable TinyDB document id for a Message-ID or a seen-message key."""
    return str(int(hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:15], 16))


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


@dataclass(frozen=True)
class _Share:
    """What one open request adds to a mentor's load."""

    mentor: str
    active: int
    pending_minutes: int  # asked and not yet answered: counted as if booked this month


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_handle = None if readonly else self._lock()
        self.db = TinyDB(str(path), storage=AtomicJSONStorage)
        self.storage: AtomicJSONStorage = self.db.storage  # type: ignore[assignment]
        self.storage.read()
        self.ledger = self.db.table("ledger", cache_size=0)
        self.log_table = self.db.table("log", cache_size=0)
        self.meta = self.db.table("meta", cache_size=0)
        self.archive_dir = path.parent / "archive"
        self.relationships_path = path.parent / "relationships.jsonl"
        self.sent_journal = path.with_name(path.name + ".sent")
        self._journal: TextIO | None = None
        self._journal_lock = threading.Lock()  # the courier's thread writes it too
        self.journal_in_use: Callable[[], bool] = lambda: False  # messages still being sent
        self._message_refs: dict[str, str] = {}
        self._relationships: dict[str, tuple[str, ...]] | None = None
        self._archived_refs: dict[str, str] | None = None
        self._shares: dict[str, _Share] = {}
        self._totals: dict[str, list[int]] = {}  # mentor -> [active, pending minutes]
        for doc in self._requests().values():
            self._index(doc)
        self._apply_sent_journal()

    def _requests(self) -> dict[str, Any]:
        return self.storage.table("requests")

    def _index(self, doc: dict[str, Any]) -> None:
        for message_id in doc.get("message_ids", []):
            self._message_refs[message_id] = doc["ref"]
        self._set_share(doc["ref"], _share(doc))

    def _set_share(self, ref: str, share: _Share | None) -> None:
        """Keep each mentor's running totals as a request's share of them changes."""
        old = self._shares.pop(ref, None)
        if old is not None:
            total = self._totals[old.mentor]
            total[0] -= old.active
            total[1] -= old.pending_minutes
        if share is not None:
            self._shares[ref] = share
            total = self._totals.setdefault(share.mentor, [0, 0])
            total[0] += share.active
            total[1] += share.pending_minutes

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
        with self._journal_lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
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
        doc = self._requests().get(str(doc_id(ref)))
        return _REQUEST.validate_python(doc) if doc else None

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
        key = str(doc_id(request.ref))
        self._requests()[key] = data
        self.storage.touch("requests", key)
        self._index(data)

    def ref_taken(self, ref: str) -> bool:
        return str(doc_id(ref)) in self._requests() or ref in self._archive_index()

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
            _REQUEST.validate_python(doc) for doc in self._requests().values() if doc["state"] not in FINISHED
        ]

    def due(self, now: datetime) -> list[str]:
        """References of open requests whose timer is due, oldest first."""
        due = []
        for doc in self._requests().values():
            timer = doc.get("timer")
            if timer and _time(timer["due"]) <= now:
                due.append((_time(timer["due"]), doc["ref"]))
        return [ref for _, ref in sorted(due)]

    def next_due(self) -> datetime | None:
        times = [_time(doc["timer"]["due"]) for doc in self._requests().values() if doc.get("timer")]
        return min(times) if times else None

    def archived(self) -> Iterator[Request]:
        if not self.archive_dir.exists():
            return
        for path in sorted(self.archive_dir.glob("*.json")):
            data = AtomicJSONStorage(str(path)).read() or {}
            for doc in data.get("requests", {}).values():
                yield _REQUEST.validate_python(doc)

    # -- the outbox ------------------------------------------------------------
    def _outbox(self) -> dict[str, Any]:
        return self.storage.table("outbox")

    def queue(self, outgoing: Outgoing, at: datetime) -> None:
        key = key_id(outgoing.message_id)
        self._outbox()[key] = {
            "message_id": outgoing.message_id,
            "ref": outgoing.ref,
            "purpose": outgoing.purpose,
            "recipients": outgoing.recipients,
            "raw": base64.b64encode(outgoing.raw).decode(),
            "queued": at.isoformat(),
            "attempts": 0,
            "error": "",
        }
        self.storage.touch("outbox", key)

    def pending(self, now: datetime | None = None) -> list[Outgoing]:
        """Messages waiting to be sent, oldest first; with `now`, only those due by then."""
        return [
            Outgoing(
                doc["message_id"], doc["ref"], doc["purpose"], doc["recipients"], base64.b64decode(doc["raw"])
            )
            for doc in self._outbox().values()
            if now is None or not doc.get("next_attempt") or _time(doc["next_attempt"]) <= now
        ]

    def outbox_entries(self) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self._outbox().values()]

    def next_attempt(self) -> datetime | None:
        """When the earliest message held back after a failure is due to be tried again."""
        times = [_time(doc["next_attempt"]) for doc in self._outbox().values() if doc.get("next_attempt")]
        return min(times) if times else None

    def handed_over(self, message_id: str) -> None:
        """The message has left for the outgoing server: note it in the sent journal at once.

        Written (not fsynced: a killed process's writes survive in the page cache; the
        next commit fsyncs) right after the message's last byte went to the server and
        before its answer is read, so a kill between the two cannot send it again.
        """
        with self._journal_lock:
            if self._journal is None:
                self._journal = open(self.sent_journal, "a", encoding="utf-8")  # noqa: SIM115
            self._journal.write(message_id + "\n")
            self._journal.flush()

    def taken_back(self, message_id: str) -> None:
        """The server refused a message noted as handed over: it stays in the outbox."""
        self.handed_over("-" + message_id)

    def mark_sent(self, message_id: str) -> None:
        """The server took the message (the sender noted it in the journal): it leaves the outbox."""
        if self._outbox().pop(key_id(message_id), None) is not None:
            self.storage.dirty = True

    def _entry(self, message_id: str) -> dict[str, Any] | None:
        return self._outbox().get(key_id(message_id))

    def mark_failed(
        self, message_id: str, error: str, *, at: datetime | None = None, next_attempt: datetime | None = None
    ) -> DeliveryAttempts | None:
        """Count a failed attempt; the message is not tried again before `next_attempt`."""
        doc = self._entry(message_id)
        if doc is None:
            return None
        doc["attempts"] += 1
        doc["error"] = error[:300]
        if at is not None and not doc.get("first_failure"):
            doc["first_failure"] = at.isoformat()
        if next_attempt is not None:
            doc["next_attempt"] = next_attempt.isoformat()
        self.storage.touch("outbox", key_id(message_id))
        return self.attempts(message_id)

    def attempts(self, message_id: str) -> DeliveryAttempts | None:
        doc = self._entry(message_id)
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
        doc = self._entry(message_id)
        if doc is not None:
            doc["reported"] = True
            self.storage.touch("outbox", key_id(message_id))

    def _apply_sent_journal(self) -> None:
        if not self.sent_journal.exists():
            return
        handed: dict[str, bool] = {}
        for line in self.sent_journal.read_text(encoding="utf-8").split():
            if line.startswith("-"):
                handed[line[1:]] = False
            else:
                handed[line] = True
        outbox = self._outbox()
        for message_id, sent in handed.items():
            if sent and outbox.pop(key_id(message_id), None) is not None:
                self.storage.dirty = True

    # -- incoming messages -----------------------------------------------------
    def seen_message(self, key: str) -> SeenMessage | None:
        doc = self.storage.table("seen").get(key_id(key))
        if not doc:
            return None
        return SeenMessage(doc["key"], _time(doc["at"]), doc["outcome"], doc["folder"], doc["ref"])

    def remember(self, key: str, at: datetime, outcome: str, folder: str, ref: str | None) -> None:
        doc_key = key_id(key)
        self.storage.table("seen")[doc_key] = {
            "key": key,
            "at": at.isoformat(),
            "outcome": outcome,
            "folder": folder,
            "ref": ref,
        }
        self.storage.touch("seen", doc_key)

    # -- the decision log (decisions not tied to one request) ---------------------
    def log(
        self, at: datetime, what: str, reason: str, *, message_id: str = "", ref: str | None = None
    ) -> None:
        self.log_table.insert(
            {"at": at.isoformat(), "what": what, "reason": reason, "message_id": message_id, "ref": ref}
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
        """Minutes booked in the current month and requests in hand, per mentor.

        The ledger holds only the last weeks' sessions; the requests' shares are kept up
        to date by `put`, so this does not read every open request.
        """
        loads: dict[str, Load] = {}
        for doc in self.ledger.all():
            start = _time(doc["start"])
            if (start.year, start.month) == (now.year, now.month):
                loads.setdefault(doc["mentor"], Load()).minutes_this_month += doc["minutes"]
        for mentor, (active, pending) in self._totals.items():
            if active or pending:
                load = loads.setdefault(mentor, Load())
                load.active += active
                load.minutes_this_month += pending
        return loads

    def known_mentors(self, protege: str) -> set[str]:
        return set(self._known().get(protege.lower(), ()))

    def _known(self) -> dict[str, tuple[str, ...]]:
        """Protégé -> mentors they finished a mentoring with, read once (tuples of strings:
        the garbage collector does not need to look at them)."""
        if self._relationships is None:
            known: dict[str, set[str]] = {}
            if self.relationships_path.exists():
                for line in self.relationships_path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        known.setdefault(entry["protege"], set()).add(entry["mentor"])
            self._relationships = {p: tuple(sorted(m)) for p, m in known.items()}
        return self._relationships

    def warm(self) -> None:
        """Read the history's indexes now, and set everything read so far aside from the
        garbage collector (gc.freeze): years of history then cost nothing per message."""
        self._archive_index()
        self._known()
        gc.freeze()

    def remember_pairing(self, protege: str, mentor: str, ref: str, at: datetime) -> None:
        """Appended before the request closes, so a crash can only repeat it (harmless)."""
        entry = {"protege": protege.lower(), "mentor": mentor.lower(), "ref": ref, "at": at.isoformat()}
        with open(self.relationships_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._relationships is not None:
            known = set(self._relationships.get(protege.lower(), ()))
            known.add(mentor.lower())
            self._relationships[protege.lower()] = tuple(sorted(known))

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
        seen = self.storage.table("seen")
        cutoff = (now - SEEN_RETENTION).isoformat()
        old = [key for key, doc in seen.items() if doc["at"] < cutoff]
        for key in old:
            del seen[key]
        if len(self.log_table) > LOG_RETENTION:
            extra = self.log_table.all()[: len(self.log_table) - LOG_RETENTION]
            self.log_table.remove(doc_ids=[doc.doc_id for doc in extra])
        month_start = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=40)
        if any(_time(doc["start"]) < month_start for doc in self.ledger.all()):
            self.ledger.remove(lambda doc: _time(doc["start"]) < month_start)
        if old:
            self.storage.dirty = True
        self.storage.flush()
        with self._journal_lock:
            # Every line is now in the state, unless a message is still on its way.
            if not self.journal_in_use():
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                self.sent_journal.unlink(missing_ok=True)

    def _archive_finished(self, now: datetime) -> None:
        requests = self._requests()
        finished = {key: doc for key, doc in requests.items() if doc["state"] in FINISHED}
        if not finished:
            return
        by_month: dict[str, dict[str, Any]] = {}
        for key, doc in finished.items():
            ended = _time(doc["history"][-1]["at"]) if doc["history"] else now
            by_month.setdefault(f"{ended:%Y-%m}", {})[key] = doc
        for month, docs in by_month.items():
            archive = TinyDB(str(self.archive_dir / f"{month}.json"), storage=AtomicJSONStorage)
            table = archive.table("requests", cache_size=0)
            for key, doc in docs.items():
                table.upsert(Document(dict(doc), doc_id=int(key)))
            archive.storage.flush()  # type: ignore[attr-defined]
        index = self._archive_index()
        with open(self.archive_dir / "index.txt", "a", encoding="utf-8") as handle:
            for month, docs in by_month.items():
                for doc in docs.values():
                    handle.write(f"{doc['ref']} {month}\n")
                    index[doc["ref"]] = month
            handle.flush()
            os.fsync(handle.fileno())
        for key, doc in finished.items():
            del requests[key]
            self._set_share(doc["ref"], None)
        self.storage.dirty = True


def _share(doc: dict[str, Any]) -> _Share | None:
    state = doc["state"]
    if state == State.ASKING and doc["asks"] and doc["asks"][-1]["outcome"] is None:
        budget = doc["form"].get("budget")
        minutes = sum(s["minutes"] for s in budget["sessions"]) if budget else 0
        return _Share(doc["asks"][-1]["mentor"], 1, minutes)
    if state == State.INTRODUCED and doc.get("mentor"):
        return _Share(doc["mentor"]["email"], 1, 0)
    return None


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
