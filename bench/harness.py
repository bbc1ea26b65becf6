"""What the benchmarks share: a private Dovecot, an SMTP sink in its own process, and a
programme on them. Uses the test suite's Dovecot (tests/servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import Dovecot  # noqa: E402

PASSWORD = "secret"


@dataclass
class Sink:
    folder: Path
    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, folder: Path) -> Sink:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sink.py")), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return cls(folder, process, port)

    def lines(self) -> list[tuple[float, str, str]]:
        path = self.folder / "received.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            stamp, message_id, purpose = line.split(" ", 2)
            found.append((float(stamp), message_id, purpose))
        return found

    def raws(self) -> list[bytes]:
        folder = self.folder / "received" / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def start_dovecot(users: tuple[str, ...] = ("mentoring",)) -> Dovecot:
    os.environ["MAILFLOW_BENCH_IMAP_PASSWORD"] = PASSWORD
    dovecot = Dovecot(users={user: PASSWORD for user in users})
    dovecot.start()
    return dovecot


def write_rules(folder: Path, mentors: int = 40) -> Path:
    """A directory with room for a whole backlog (every request gets a mentor asked, as in a
    programme that is not short of mentors) and one rule that may ask any of them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = [
        f'[[mentor]]\nemail = "mentor{n}@example.org"\nname = "Mentor {n}"\n'
        f'library = "Library {n % 7}"\nskills = ["teen services", "makerspaces", "storytime"]\n'
        f'time_zone = "America/Chicago"\navailability = ["Mon-Fri 09:00-17:00"]\n'
        f"max_hours_per_month = 1000\nmax_active = 1000\n"
        for n in range(mentors)
    ]
    (folder / "mentors.toml").write_text("\n".join(entries))
    (folder / "rules.toml").write_text(
        '[[rule]]\nname = "Anyone"\nrank = ["skill_overlap", "least_loaded"]\n'
    )
    return folder


def write_programme(
    root: Path,
    dovecot: Dovecot,
    sink: Sink,
    *,
    user: str = "mentoring",
    extra_mail: str = "",
    rules: Path | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(f"""
[programme]
address = "mentoring@library.org"
coordinator = "coordinator@library.org"

[mail]
inbox = "{dovecot.url(user)}"
outbox = "smtp://127.0.0.1:{sink.port}"
password_env = "MAILFLOW_BENCH_IMAP_PASSWORD"
{extra_mail}

[paths]
rules = "{rules or write_rules(root / "rules")}"
templates = "{REPO / "templates"}"
state = "var/state.json"

[digest]
enabled = false
""")
    return config


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
