"""Benchmark (c): the per-request cost does not grow with the history kept in the state.

Runs the same work twice, each in a fresh process so resident memory is measured on
its own: once on an empty state, once on a state holding 50,000 past requests
(archived by month, with their mentor/protégé relationships). The work is a backlog
of new requests (parse, match, acknowledge, ask) followed by the mentors' accepts
(slot finding, introductions, invites), on Maildir in and out so that only
mailflow's own cost is measured. Prints a table.

    ./dev bench            (all benchmarks)
    .venv/bin/python bench/scaling.py [--history 50000] [--requests 400]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
TOPICS = [
    "Launching a teen advisory council",
    "Writing a grant narrative",
    "Board presentations",
    "Makerspace on a budget",
    "Toddler storytime for 40 families",
    "Digital literacy for seniors",
    "Community outreach ideas",
    "First-time branch manager",
]
SKILLS = [
    "teen services",
    "grant writing",
    "board relations",
    "makerspaces",
    "storytime",
    "digital literacy",
    "community outreach",
    "management",
]


def seed_history(var: Path, count: int) -> None:
    """Write `count` closed requests into the archive, as years of a programme would."""
    from tinydb import TinyDB

    from mailflow.model import Budget, Person, Request, SessionSpec, State
    from mailflow.store import AtomicJSONStorage, Store, doc_id
    from mailflow.tokens import ALPHABET

    rng = random.Random(7)
    mentors = [f"mentor{n}@example.org" for n in range(60)]
    by_month: dict[str, list[Request]] = {}
    refs: set[str] = set()
    relationships = []
    while len(refs) < count:
        ref = "MM-" + "".join(rng.choice(ALPHABET) for _ in range(5))
        if ref in refs:
            continue
        refs.add(ref)
        created = START - timedelta(days=rng.randrange(30, 365 * 4))
        protege = f"protege{rng.randrange(count // 3)}@example.org"
        mentor = rng.choice(mentors)
        request = Request(ref=ref, protege=Person(protege, "Past Protege"), created=created)
        request.form.topic = rng.choice(TOPICS)
        request.form.budget = Budget((SessionSpec("call", 45),), None, "45 minutes")
        request.mentor = Person(mentor, "Past Mentor")
        request.move(State.ASKING, created, "asked")
        request.move(State.INTRODUCED, created + timedelta(days=1), "accepted")
        request.move(State.REFLECTING, created + timedelta(days=10), "sessions done")
        request.move(State.CLOSED, created + timedelta(days=14), "both reflections received")
        by_month.setdefault(f"{created + timedelta(days=14):%Y-%m}", []).append(request)
        relationships.append({"protege": protege, "mentor": mentor, "ref": ref, "at": created.isoformat()})
    from pydantic import TypeAdapter

    adapter = TypeAdapter(Request)
    archive = var / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    with open(archive / "index.txt", "w") as index:
        for month, requests in by_month.items():
            db = TinyDB(str(archive / f"{month}.json"), storage=AtomicJSONStorage)
            db.storage.write(
                {
                    "requests": {
                        str(doc_id(r.ref)): adapter.dump_python(r, mode="json")  # type: ignore[attr-defined]
                        for r in requests
                    }
                }
            )
            db.storage.flush()  # type: ignore[attr-defined]
            for request in requests:
                index.write(f"{request.ref} {month}\n")
    with open(var / "relationships.jsonl", "w") as handle:
        for entry in relationships:
            handle.write(json.dumps(entry) + "\n")
    Store(var / "state.json").close()


def deliver(mailbox: Path, raw: bytes, name: str) -> None:
    (mailbox / "tmp" / name).write_bytes(raw)
    os.rename(mailbox / "tmp" / name, mailbox / "new" / name)


def worker(root: Path, requests: int) -> dict[str, float]:
    """Runs in its own process: handle `requests` new requests, then every mentor's accept."""
    from mailflow.clock import FixedClock
    from mailflow.config import load_config
    from mailflow.correspondent import purpose, read, reply
    from mailflow.engine import Engine
    from mailflow.mailboxes.maildir import MaildirSender, MaildirSource
    from mailflow.model import Person
    from mailflow.store import Store

    sys.path.insert(0, str(REPO / "tests"))
    from programme import request_mail  # the same request shape the tests use

    config = load_config(root / "config.toml")
    clock = FixedClock(START)
    started = time.perf_counter()
    store = Store(config.state_path)
    engine = Engine(config, store, MaildirSource(root / "mailbox"), MaildirSender(root / "outbox"), clock)
    startup = time.perf_counter() - started
    rng = random.Random(11)
    for n in range(requests):
        body = (
            f"Topic: {rng.choice(TOPICS)} #{n}\nTime budget: {rng.choice([30, 45, 60])} minutes\n"
            f"Skills: {rng.choice(SKILLS)}\nFormat: video\n"
        )
        deliver(root / "mailbox", request_mail(f"new{n}@example.org", body), f"{n:06d}.req")
    started = time.perf_counter()
    engine.run_once()
    intake = time.perf_counter() - started
    asks = [read(p.read_bytes()) for p in (root / "outbox" / "new").iterdir()]
    asks = [m for m in asks if purpose(m) == "ask"]
    clock.advance(timedelta(hours=1))
    for n, ask in enumerate(asks):
        to = ask["To"].addresses[0]
        deliver(
            root / "mailbox",
            reply(ask, Person(to.addr_spec, to.display_name), "accept", clock.now()),
            f"{n:06d}.acc",
        )
    started = time.perf_counter()
    engine.run_once()
    accepts = time.perf_counter() - started
    engine.close()
    store.close()
    rss_mb = peak_rss_mb()
    return {
        "startup_s": startup,
        "intake_ms": 1000 * intake / requests,
        "accept_ms": 1000 * accepts / max(1, len(asks)),
        "asks": len(asks),
        "rss_mb": rss_mb,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(root: Path, history: int) -> None:
    root.mkdir(parents=True)
    for sub in ("tmp", "new", "cur"):
        (root / "mailbox" / sub).mkdir(parents=True)
    (root / "config.toml").write_text(f"""
[programme]
address = "mentoring@library.org"
coordinator = "coordinator@library.org"
[mail]
inbox = "maildir:mailbox"
outbox = "maildir:outbox"
[paths]
rules = "{REPO / "rules"}"
templates = "{REPO / "templates"}"
state = "var/state.json"
""")
    (root / "var").mkdir()
    if history:
        seed_history(root / "var", history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the two states this often")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.requests)))
        return
    base = Path(tempfile.mkdtemp(prefix="mailflow-bench-"))
    states = {"empty state": 0, f"{args.history:,} past requests": args.history}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in states}
    try:
        for history in states.values():  # seeded once, copied for each round
            prepare(base / f"seed-{history}", history)
        for round_number in range(args.rounds):
            for label, history in states.items():
                root = base / f"run-{round_number}-{history}"
                shutil.copytree(base / f"seed-{history}", root)
                output = subprocess.run(
                    [sys.executable, __file__, "--worker", str(root), "--requests", str(args.requests)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[label].append(json.loads(output.stdout.strip().splitlines()[-1]))
                shutil.rmtree(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results = {
        label: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        | {"max_rss": max(r["rss_mb"] for r in rounds)}
        for label, rounds in runs.items()
    }
    empty, full = results.values()
    print(
        f"\nmailflow scaling benchmark: {args.requests} new requests and their accepts, Maildir in and "
        f"out; medians of {args.rounds} rounds, the two states alternating"
    )
    print(f"{'state':<24}{'startup':>10}{'per request':>14}{'per accept':>13}{'peak RSS':>11}")
    for label, r in results.items():
        print(
            f"{label:<24}{r['startup_s']:>9.2f}s{r['intake_ms']:>12.2f}ms{r['accept_ms']:>11.2f}ms"
            f"{r['max_rss']:>9.0f}MB"
        )
    ratio_intake = full["intake_ms"] / empty["intake_ms"]
    ratio_accept = full["accept_ms"] / empty["accept_ms"]
    print(f"{'ratio (history/empty)':<24}{'':>10}{ratio_intake:>14.2f}{ratio_accept:>13.2f}")
    verdict = "meets" if max(ratio_intake, ratio_accept) <= 1.3 and full["max_rss"] < 150 else "MISSES"
    print(f"target: ratio <= 1.3 and RSS < 150 MB with history: {verdict}")


if __name__ == "__main__":
    main()
