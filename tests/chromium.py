"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe.

`render(page, screenshot)` opens a local file, waits for it to load, takes a full-page
PNG screenshot and returns everything the page complained about: console errors and
warnings, uncaught exceptions, resources that failed to load, and every request that
left the machine (a self-contained page makes none). Debian's `chromium` must be
installed (`./dev test` installs it); a test that needs it fails when it is missing.

The protocol runs over `--remote-debugging-pipe`: Chromium reads JSON commands, each
ending in a NUL byte, from its file descriptor 3 and writes replies and events to 4.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-pipe",
]


@dataclass
class Rendered:
    screenshot: Path
    problems: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    title: str = ""
    height: int = 0


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run ./dev test, which installs Debian's chromium package")
    return path


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        wanted = self.send(method, params, session)
        reply = self.wait(lambda m: m.get("id") == wanted, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def wait(self, condition: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if condition(message):
                    return dict(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buffer += chunk


def render(page: Path, screenshot: Path, width: int = 1100) -> Rendered:
    """Load `page`, screenshot all of it, and collect what went wrong."""
    to_browser_read, to_browser_write = _high(os.pipe())
    from_browser_read, from_browser_write = _high(os.pipe())
    profile = tempfile.mkdtemp(prefix="mailflow-chromium-")

    def give_pipes() -> None:  # in the child, before exec: the pipes become its fds 3 and 4
        os.dup2(to_browser_read, 3)
        os.dup2(from_browser_write, 4)

    browser = subprocess.Popen(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=give_pipes,
        close_fds=False,  # our other descriptors are not inheritable anyway (PEP 446)
    )
    os.close(to_browser_read)
    os.close(from_browser_write)
    pipe = _Pipe(to_browser_write, from_browser_read)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        metrics = pipe.call(
            "Runtime.evaluate",
            {"expression": "[document.title, document.documentElement.scrollHeight]", "returnByValue": True},
            session=session,
        )
        title, height = metrics["result"]["value"]
        shot = pipe.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        result = Rendered(screenshot=screenshot, title=title, height=height)
        for event in pipe.events:
            result.problems.extend(_problem(event))
            if event["method"] == "Network.requestWillBeSent":
                result.requests.append(event["params"]["request"]["url"])
        with contextlib.suppress(RuntimeError, TimeoutError):  # it is going away either way
            pipe.call("Browser.close", timeout=10)
        return result
    finally:
        os.close(to_browser_write)
        os.close(from_browser_read)
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The same pipe on descriptors above 10, so moving them to 3 and 4 cannot overwrite one."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


def _problem(event: dict[str, Any]) -> list[str]:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return [f"exception: {details.get('exception', {}).get('description') or details.get('text')}"]
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
        return [f"console.{params['type']}: {text}"]
    if method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
        entry = params["entry"]
        return [f"log {entry['level']}: {entry['text']} {entry.get('url', '')}".strip()]
    if method == "Network.loadingFailed":
        return [f"failed to load: {params.get('errorText')}"]
    return []
