"""Headless Chromium driven over the DevTools protocol on a pipe, for the HTML report's test.

Why the pipe (``--remote-debugging-pipe``) rather than a port or the ``--dump-dom`` /
``--screenshot`` flags: it needs no free port and no websocket client, nothing else on the
machine can connect to it, and one browser start does everything: it reports every console
message, uncaught exception, browser log entry (blocked loads, CSP violations) and network
request *as events*, so the test can wait on events with a deadline instead of sleeping, and
then take a screenshot and print to PDF in the same page. Chromium reads commands on fd 3 and
writes replies and events on fd 4, each a JSON message ended by a NUL byte.

Run it by hand to look at a report: ``python -m tests.reports.chromium report.html
--screenshot shot.png --pdf report.pdf``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("SHADOWGATE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--no-default-browser-check", "--disable-dev-shm-usage", "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    return path if path and os.access(path, os.X_OK) else None


@dataclass
class PageLoad:
    """What happened while a page loaded, and what it rendered."""

    url: str
    console: list[str] = field(default_factory=list)  # console errors and warnings
    exceptions: list[str] = field(default_factory=list)  # uncaught JavaScript exceptions
    log: list[str] = field(default_factory=list)  # browser log: failed loads, CSP, ...
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    dom: dict[str, Any] = field(default_factory=dict)


class Chromium:
    """One headless browser; ``with Chromium() as b: b.load(path)``."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="sg-chromium-")
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.stderr = Path(self._profile.name) / "stderr.log"

    def __enter__(self) -> Chromium:
        binary = find_chromium()
        if binary is None:
            raise FileNotFoundError(f"Chromium not found at {CHROMIUM}")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Move the child's ends above 4, so that "3<&n" never closes what it just opened.
        to_browser_r, from_browser_w = _above(to_browser_r, 10), _above(from_browser_w, 10)
        # The browser wants the pipe on fds 3 and 4 exactly; bash puts them there (dash
        # takes single-digit fds only).
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} ' \
                 f'{to_browser_r}<&- {from_browser_w}>&-'
        with self.stderr.open("wb") as err:
            self._proc = subprocess.Popen(
                [shutil.which("bash") or "/bin/bash", "-c", script, binary, *FLAGS,
                 f"--user-data-dir={self._profile.name}/profile", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(to_browser_r, from_browser_w), start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._proc.poll() is None:
                self._send("Browser.close")
                self._proc.wait(timeout=10)
        except (OSError, TimeoutError, subprocess.TimeoutExpired):
            pass
        finally:
            if self._proc.poll() is None:  # our own process group only (start_new_session)
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._profile.cleanup()

    # The protocol -------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None = None,
              session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time; its log: "
                                   + self.stderr.read_text(errors="replace")[-2000:])
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the pipe; its log: "
                                          + self.stderr.read_text(errors="replace")[-2000:])
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply; events that arrive meanwhile are kept."""
        sent = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, event in enumerate(self._events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self._events.pop(i)
        while True:
            message = self._receive(deadline)
            if message.get("method") == method and message.get("sessionId") == session:
                return message
            self._events.append(message)

    # A page -------------------------------------------------------------------------------

    def load(self, path: Path, *, width: int = 1280, height: int = 2400,
             screenshot: Path | None = None, pdf: Path | None = None,
             print_screenshot: Path | None = None, full_page: bool = False) -> PageLoad:
        """Open ``path`` in a new tab, wait for its load event, and record what happened."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session)
        url = path.resolve().as_uri()
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        page = PageLoad(url)
        page.dom = self._evaluate(session, DOM_PROBE)
        if screenshot is not None:
            screenshot.write_bytes(self._screenshot(session, full_page))
        if print_screenshot is not None:
            self.call("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
            print_screenshot.write_bytes(self._screenshot(session, full_page))
            self.call("Emulation.setEmulatedMedia", {"media": ""}, session=session)
        if pdf is not None:
            data = self.call("Page.printToPDF", {"printBackground": False,
                                                 "preferCSSPageSize": True},
                             session=session)["data"]
            pdf.write_bytes(base64.b64decode(data))
        # A last round trip, so that every event the page caused has arrived before we look.
        self._evaluate(session, "1")
        for event in self._events:
            if event.get("sessionId") == session:
                _record(page, event)
        self._events.clear()
        self.call("Target.closeTarget", {"targetId": target})
        return page

    def _evaluate(self, session: str, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                          session=session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"evaluation failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def _screenshot(self, session: str, full_page: bool) -> bytes:
        """The viewport (the window size), or with ``full_page`` the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", params, session=session)
        return base64.b64decode(data["data"])


def _above(fd: int, lowest: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return moved


DOM_PROBE = """JSON.parse(JSON.stringify({
  svg: document.querySelectorAll("svg").length,
  charts: document.querySelectorAll("figure.chart svg").length,
  chartsDrawn: [...document.querySelectorAll("figure.chart svg")].filter(
    s => s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 50
         && s.querySelectorAll("path").length > 0).length,
  scripts: document.querySelectorAll("script").length,
  title: document.title,
  h2: [...document.querySelectorAll("h2")].map(h => h.textContent.trim()),
  verdicts: [...document.querySelectorAll("li.verdict .badge")].map(b => b.textContent.trim()),
  resources: performance.getEntriesByType("resource").map(e => e.name),
  wider: document.documentElement.scrollWidth > window.innerWidth,
}))"""


def _record(page: PageLoad, event: dict[str, Any]) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in (
            "error", "warning", "assert"):
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        page.console.append(f"{params['type']}: {args}")
    elif method == "Runtime.exceptionThrown":
        page.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
    elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
        entry = params["entry"]
        page.log.append(f"{entry['level']} ({entry.get('source')}): {entry.get('text')} "
                        f"{entry.get('url', '')}".strip())
    elif method == "Network.requestWillBeSent":
        url = params["request"]["url"]
        if url != page.url and not url.startswith("data:"):
            page.requests.append(url)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--print-screenshot", type=Path)
    parser.add_argument("--pdf", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--full-page", action="store_true")
    args = parser.parse_args(argv)
    with Chromium() as browser:
        page = browser.load(args.html, width=args.width, height=args.height,
                            screenshot=args.screenshot, pdf=args.pdf,
                            print_screenshot=args.print_screenshot, full_page=args.full_page)
    print(json.dumps({"console": page.console, "exceptions": page.exceptions,
                      "log": page.log, "requests": page.requests, "dom": page.dom}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
