"""Headless Chromium driven over the DevTools protocol: open a page, read what it rendered, what it logged, and a
screenshot. A small client for tests (websocket-client); Debian's `/usr/bin/chromium`, started here.

Why the protocol rather than `--dump-dom` and `--enable-logging=stderr`: Chromium writes a page's console messages
to stderr, but not a resource that failed to load nor, reliably, a Content-Security-Policy refusal; the protocol
reports each of them as an event (Runtime.consoleAPICalled, Runtime.exceptionThrown, Log.entryAdded,
Network.loadingFailed), and gives the rendered DOM and its visible text (Runtime.evaluate: DevTools' own
evaluation, which a page's CSP does not govern) and a full-page screenshot from the same browser.

Flags: `--no-sandbox` (the sandbox needs user namespaces a container as root does not give), `--headless`,
`--disable-gpu`; the rest keep it from reaching out (component updates, sync, background networking).
`--remote-debugging-port=0` lets Chromium pick a free port on 127.0.0.1; it writes it to DevToolsActivePort in the
profile folder.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websocket

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1")
START_TIMEOUT_S = 90
CALL_TIMEOUT_S = 120


class DevToolsError(RuntimeError):
    """Chromium would not start, or answered a call with an error."""


class Page:
    """One tab: `call` a protocol method; every event received is kept in `events` in order."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self.ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)
        raise DevToolsError(f"{method}: no answer in {CALL_TIMEOUT_S} s")

    def wait_for(self, event: str) -> dict[str, Any]:
        """The first `event` received (already, or from now on)."""
        for e in self.events:
            if e["method"] == event:
                return e
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
                if message["method"] == event:
                    return message
        raise DevToolsError(f"no {event} in {CALL_TIMEOUT_S} s")

    def open(self, url: str) -> None:
        """Navigate to `url` with console, log and network reporting on, and wait for its load event."""
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", expression="1", awaitPromise=True)     # drain what the load queued

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools' evaluation, not a page script)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, error log entries (CSP refusals, failed loads) and
        failed requests the page produced."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description", "")))
                                                           for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} "
                           f"{p['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']} ({p['entry']['source']}): {p['entry']['text']} "
                           f"{p['entry'].get('url', '')}")
            elif e["method"] == "Network.loadingFailed":
                out.append(f"request failed: {p.get('errorText')} {p.get('blockedReason', '')}")
        return out

    def screenshot(self, path: Path, width: int = 1280, max_height: int | None = None) -> Path:
        """A PNG of the whole page (or its first `max_height` pixels) at `width` CSS pixels."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        height = int(size["height"]) if max_height is None else min(int(size["height"]), max_height)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def binary() -> str | None:
    return shutil.which("chromium")


@contextmanager
def chromium(profile: Path) -> Iterator[Page]:
    """Start headless Chromium with a fresh profile, connect to its first tab; stop it on the way out."""
    exe = binary()
    if exe is None:
        raise DevToolsError("no chromium on PATH (Debian: apt-get install chromium)")
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)       # a reused profile's is an old browser's port
    log = profile / "chromium.log"
    with log.open("w") as err:
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = _port(profile / "DevToolsActivePort", proc, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            targets = json.loads(answer.read())
        url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(url, timeout=CALL_TIMEOUT_S, suppress_origin=True)
        try:
            yield Page(ws)
        finally:
            ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _port(active: Path, proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevToolsError(f"chromium exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if active.exists():
            lines = active.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        time.sleep(0.2)
    raise DevToolsError(f"chromium did not open its DevTools port in {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")
