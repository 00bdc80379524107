"""A real browser for the operator page's tests: Debian's headless Chromium driven over the
DevTools protocol (a WebSocket, through aiohttp), so a test can type into the login form,
click, and wait for what the page shows: never a fixed sleep, always a condition the page's
own DOM meets (or a deadline that fails the test)."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest


def chromium() -> str:
    found = shutil.which("chromium")
    if found is not None:
        return found
    reason = "chromium is not installed (Debian chromium)"
    pytest.skip(f"{reason}; `python3 bootstrap.py test` installs it when run as root")


class PageError(AssertionError):
    """The page did not do what the test waited for (its text says what)."""


class Page:
    """One tab of a running Chromium."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []  # the page's uncaught exceptions
        self.answers: list[str] = []  # what the next prompt() dialogs are answered
        self._tasks: list[asyncio.Future[dict[str, Any]]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            waiting = self._pending.pop(data.get("id", -1), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(data)
            elif data.get("method") == "Page.javascriptDialogOpening":
                # confirm() is answered yes, prompt() with the next of `answers`.
                text = self.answers.pop(0) if self.answers else ""
                self._tasks.append(asyncio.ensure_future(self.send(
                    "Page.handleJavaScriptDialog", accept=True, promptText=text)))
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(data["params"]["exceptionDetails"])[:300])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PageError("the browser went away"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        await self._ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise PageError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise PageError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}"
                            f" {result['exceptionDetails'].get('exception', {})}")
        return result.get("result", {}).get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait("document.readyState === 'complete' && document.body"
                        " && document.body.dataset.ready === '1'")

    async def wait(self, condition: str, timeout_s: float = 20.0) -> Any:
        """Waits until the expression is truthy in the page (it may navigate meanwhile);
        PageError naming the condition at the deadline."""
        probe = ("new Promise((ok) => { const t0 = performance.now(); const check = () => {"
                 f" let v = null; try {{ v = ({condition}); }} catch (e) {{}}"
                 " if (v || performance.now() - t0 > 2000)"
                 " return ok(v && v.nodeType ? true : v || null);"
                 " setTimeout(check, 25); }; check(); })")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                value = await self.eval(probe)
            except PageError as exc:  # the page navigated away mid-check: ask the next one
                if "context" not in str(exc).lower() and "navigat" not in str(exc).lower():
                    raise
                value = None
            if value:
                return value
        body = await self.eval("document.body ? document.body.outerHTML : ''")
        raise PageError(f"the page never met: {condition}\n{str(body)[:3000]}")

    async def type(self, selector: str, text: str) -> None:
        await self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        f" e.focus(); e.value = {json.dumps(text)}; return true; }})()")

    async def click(self, selector: str) -> None:
        found = await self.eval(f"(() => {{ const e = document.querySelector("
                                f"{json.dumps(selector)}); if (!e) return false; e.click();"
                                " return true; })()")
        if not found:
            raise PageError(f"nothing to click at {selector}\n{(await self.dom())[:2000]}")

    async def dom(self) -> str:
        return str(await self.eval("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile, and its first tab."""
    proc = await asyncio.create_subprocess_exec(
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--remote-debugging-port=0", "--window-size=1200,900",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = None
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            if not line:
                raise PageError("chromium exited before its DevTools endpoint was up")
            found = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = None if found is None else int(found.group(1))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=64 * 1024 * 1024) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
                page._reader.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
