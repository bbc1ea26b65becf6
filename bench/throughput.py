"""Benchmark (a): backlog throughput over real Dovecot and SMTP, beside the bare I/O floor.

A backlog of requests waits in the inbox of a private Dovecot. mailflow handles all of
it (read over IMAP, decide, send over SMTP, file each message away with MOVE), and
the time is taken. Then, in the same run and on the same servers, the bare I/O floor:
imapclient fetches the same requests from a second, identical inbox and smtplib sends
the very messages mailflow sent, on one connection, with no logic in between (the
floor's MOVE of every message is timed apart, since the issue's floor is fetch and
send). The SMTP servers run in processes of their own (bench/sink.py). The machine is
shared and its speed drifts, so mailflow and the floor alternate over several rounds;
the verdict is the median of the rounds' own ratios.

    ./dev bench
    .venv/bin/python bench/throughput.py [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

from harness import REPO, Sink, start_dovecot, write_programme

from mailflow.clock import SystemClock
from mailflow.config import load_config
from mailflow.engine import Engine
from mailflow.mailboxes import open_mail
from mailflow.mailboxes.smtp import crlf
from mailflow.store import Store

sys.path.insert(0, str(REPO / "tests"))
from programme import request_mail

TOPICS = [
    "Launching a teen advisory council",
    "Writing a grant narrative",
    "Board presentations",
    "Makerspace on a budget",
    "Toddler storytime for 40 families",
    "Digital literacy for seniors",
]


def backlog(count: int) -> list[bytes]:
    return [
        request_mail(
            f"protege{n}@example.org",
            f"Topic: {TOPICS[n % len(TOPICS)]} ({n})\nTime budget: 45 minutes\nFormat: video\n"
            "Skills: teen services, makerspaces\n",
            name=f"Protege {n}",
        )
        for n in range(count)
    ]


def append_all(dovecot, user: str, raws: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    with dovecot.client(user) as client:
        for raw in raws:
            client.append("INBOX", raw)


def run_mailflow(config_path: Path) -> tuple[float, int]:
    config = load_config(config_path)
    store = Store(config.state_path)
    source, sender = open_mail(config)
    engine = Engine(config, store, source, sender, SystemClock())
    started = time.perf_counter()
    handled = 0
    while True:
        report = engine.run_once()
        handled += report.handled
        if report.handled == 0:
            break
    elapsed = time.perf_counter() - started
    engine.close()
    source.close()
    sender.close()
    store.close()
    return elapsed, handled


def run_floor(dovecot, user: str, port: int, sent: list[bytes]) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    """Fetch the inbox in batches and send `sent`, with no logic: (fetch, send, move seconds,
    fetched). The MOVE of every message away (which mailflow does too) is timed apart."""
    started = time.perf_counter()
    client = dovecot.client(user)
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    fetched = 0
    for start in range(0, len(uids), 200):
        chunk = uids[start : start + 200]
        for data in client.fetch(chunk, ["BODY.PEEK[]"]).values():
            fetched += len(data[b"BODY[]"]) > 0
    fetch = time.perf_counter() - started
    client.create_folder("done")
    started = time.perf_counter()
    for start in range(0, len(uids), 200):
        client.move(uids[start : start + 200], "done")
    moving = time.perf_counter() - started
    client.logout()
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port)
    headers = BytesHeaderParser(policy=compat32)
    for raw in sent:
        parsed = headers.parsebytes(raw)
        recipients = [a for _, a in getaddresses(parsed.get_all("To", []) + parsed.get_all("Cc", []))]
        smtp.sendmail("mentoring@library.org", recipients, crlf(raw))
    smtp.quit()
    send = time.perf_counter() - started
    return fetch, send, moving, fetched


def one_round(base: Path, dovecot, raws: list[bytes], round_number: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """mailflow on one copy of the backlog, then the floor on another, same servers."""
    sink = Sink.start(base / f"sink-{round_number}")
    floor_sink = Sink.start(base / f"floor-sink-{round_number}")
    user = f"mentoring{round_number}"
    floor_user = f"floor{round_number}"
    try:
        append_all(dovecot, user, raws)
        append_all(dovecot, floor_user, raws)
        config = write_programme(base / f"programme-{round_number}", dovecot, sink, user=user)
        elapsed, handled = run_mailflow(config)
        sent = sink.raws()
        left = len(dovecot.messages("INBOX", user=user))
        fetch, send, move, fetched = run_floor(dovecot, floor_user, floor_sink.port, sent)
        ids = [message_id for _, message_id, _ in sink.lines()]
    finally:
        sink.stop()
        floor_sink.stop()
    return {
        "mailflow": elapsed,
        "handled": handled,
        "sent": len(sent),
        "left": left,
        "fetch": fetch,
        "send": send,
        "move": move,
        "fetched": fetched,
        "twice": len(ids) - len(set(ids)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="alternate mailflow and floor this often")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mailflow-throughput-"))
    users = [f"{kind}{n}" for n in range(args.rounds) for kind in ("mentoring", "floor")]
    dovecot = start_dovecot(tuple(users))
    try:
        raws = backlog(args.requests)
        rounds = [one_round(base, dovecot, raws, n) for n in range(args.rounds)]
    finally:
        dovecot.close()
        shutil.rmtree(base, ignore_errors=True)
    n = args.requests
    print(
        f"\nmailflow backlog throughput: {n} requests in a Dovecot inbox, answered over SMTP; "
        f"{args.rounds} rounds, each mailflow then the bare I/O floor on a fresh copy"
    )
    print(
        f"{'round':<7}{'floor s':>9}{'floor req/s':>13}{'+MOVE s':>9}{'mailflow s':>12}{'req/s':>9}"
        f"{'of floor':>10}{'sent':>7}{'twice':>7}{'left':>6}"
    )
    for number, r in enumerate(rounds, start=1):
        floor = r["fetch"] + r["send"]
        print(
            f"{number:<7}{floor:>9.2f}{n / floor:>13.1f}{floor + r['move']:>9.2f}{r['mailflow']:>12.2f}"
            f"{n / r['mailflow']:>9.1f}{floor / r['mailflow']:>10.0%}{r['sent']:>7}{r['twice']:>7}"
            f"{r['left']:>6}"
        )
    floor_median = statistics.median(r["fetch"] + r["send"] for r in rounds)
    mailflow_median = statistics.median(r["mailflow"] for r in rounds)
    # Each round's floor runs right after its mailflow, so the pair shares the machine's pace
    # at that moment: the median of the rounds' own ratios is the figure drift spoils least.
    ratio = statistics.median((r["fetch"] + r["send"]) / r["mailflow"] for r in rounds)
    print(
        f"{'median':<7}{floor_median:>9.2f}{n / floor_median:>13.1f}{'':>9}{mailflow_median:>12.2f}"
        f"{n / mailflow_median:>9.1f}{ratio:>10.0%}"
    )
    print(
        f"target: at least 70% of the floor's rate: {'meets' if ratio >= 0.7 else 'MISSES'} "
        f"(n8n, for orientation: about 210 messages/s on this stack)"
    )


if __name__ == "__main__":
    main()
