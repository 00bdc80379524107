"""Issue 15's done-when, in a real browser (Debian's headless Chromium over DevTools) against a
started centre: accounts made with `msa centre user add`; an operator logs in, sees the live
alarm, opens its case file and timeline and adds a note; a supervisor logs in and reads the
daily report; a client without a session is refused everywhere. The audit log then holds
exactly those actions, `msa centre audit verify` passes, and fails once an entry is edited in
the database. On both backends: a state folder's SQLite files, and a PostgreSQL database
(the CLI then given `--database`)."""
from __future__ import annotations

import asyncio
import datetime
import json
import sys
import time
from pathlib import Path

from msa.centre.registry import Case
from msa.centre.server import RunningCentre, start_centre
from msa.wire import protocol as hp

from backends import State, sql, state  # noqa: F401
from cdp import Page, browser, chromium
from pg import pg_database, pg_server  # noqa: F401
from test_operator_page import BID, CENTRE_KEY, _alarm


async def msa(*args: str) -> tuple[int, str]:
    """The msa command line, as another process (as a technician runs it next to the centre)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msa.tools.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def where(state: State) -> list[str]:
    """The CLI's options naming the centre's data: its state folder, and its database."""
    return ["--state-dir", str(state.dir)] + \
        ([] if state.database is None else ["--database", state.database])


async def add_user(state: State, name: str, role: str, tmp: Path) -> str:
    password = f"{name}-correct-horse-battery"
    secret = tmp / f"{name}.pw"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    code, out = await msa("centre", "user", "add", *where(state), "--role", role,
                          "--password-file", str(secret), name)
    assert code == 0, out
    return password


async def log_in(page: Page, base: str, name: str, password: str) -> None:
    await page.goto(base + "/")  # no session: the page sends the browser to log in
    assert await page.eval("location.pathname") == "/login"
    await page.type("#name", name)
    await page.type("#password", password)
    await page.click("button[type=submit]")
    await page.wait("location.pathname === '/' && document.body.dataset.ready === '1'"
                    f" && document.getElementById('who').textContent.startsWith('{name} (')")


async def log_out(page: Page) -> None:
    await page.click("#logout")
    await page.wait("location.pathname === '/login' && document.body.dataset.ready === '1'")


def test_operator_supervisor_and_stranger_in_a_browser(tmp_path: Path, state: State) -> None:
    chromium()

    async def body(running: RunningCentre) -> dict[str, object]:
        base = f"http://127.0.0.1:{running.operator_port}"
        reg = running.centre.registry
        reg.put_case(Case("CASE-15", "Vera Victim", "+32470000015", "Sam Suspect",
                          "waits outside her work", ("no contact", "500 m"), weapons=False))
        reg.register(BID, CENTRE_KEY, "CASE-15")
        for m in _alarm(hp.Kind.ALARM, 7, 3, time.time() - 30):
            running.centre.ingest(m)
        olga = await add_user(state, "olga", "operator", tmp_path)
        sven = await add_user(state, "sven", "supervisor", tmp_path)
        seen: dict[str, object] = {}
        async with browser(tmp_path / "profile") as page:
            # The operator: the live alarm, its case file and timeline, a note.
            await log_in(page, base, "olga", olga)
            await page.wait("document.querySelector('article.incident.open')"
                            "?.dataset.incident === 'INC-000001'")
            seen["live"] = await page.eval(
                "document.querySelector('article.incident.open').textContent")
            await page.click("button[data-case='INC-000001']")
            await page.wait("document.querySelector('#case table.timeline tbody tr')")
            seen["timeline"] = await page.eval(
                "[...document.querySelectorAll('#case tr[data-what]')]"
                ".map(r => r.dataset.what)")
            await page.type("#note-text", "Called her: she is safe <b>at</b> a neighbour's.")
            await page.click("#note-form button[type=submit]")
            await page.wait("document.querySelector('#case tr[data-what=note]')")
            seen["note"] = await page.eval(
                "document.querySelector('#case tr[data-what=note]').textContent")
            seen["operator sees report"] = await page.eval("!$('report').hidden")
            await log_out(page)
            # The supervisor: the daily report.
            await log_in(page, base, "sven", sven)
            await page.wait("!document.getElementById('report').hidden")
            today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
            await page.eval(f"document.getElementById('report-day').value = '{today}'")
            await page.click("#report-form button[type=submit]")
            await page.wait(f"document.querySelector('#report-body tr[data-button=\"{BID:08x}\"]')")
            seen["report"] = await page.eval(
                f"document.querySelector('#report-body tr[data-button=\"{BID:08x}\"]')"
                ".textContent")
            await page.screenshot(tmp_path / "report.png")
            await log_out(page)
            # A stranger: the page sends it to log in, every endpoint answers 401.
            await page.goto(base + "/")
            seen["stranger lands on"] = await page.eval("location.pathname")
            paths = ["api/state", "api/me", "api/incidents/INC-000001", "api/accounts",
                     f"api/report?day={today}"]
            seen["stranger GET"] = await page.eval(
                "Promise.all(" + json.dumps(paths) + ".map(p => fetch(p).then(r => r.status)))")
            seen["stranger POST"] = await page.eval(
                "Promise.all(['api/incidents/INC-000001/notes', 'api/incidents/INC-000001/"
                "resolve', 'api/accounts', 'api/logout'].map(p => fetch(p, {method: 'POST',"
                " body: '{\"text\": \"x\"}', headers: {'Content-Type': 'application/json',"
                " 'X-MSA-CSRF': 'guess'}}).then(r => r.status)))")
        return seen

    async def run() -> dict[str, object]:
        running = await start_centre(state.config(dc09_port=None))
        try:
            return await body(running)
        finally:
            await running.stop()
    seen = asyncio.run(run())

    assert "STALKING ALARM" in str(seen["live"]) and "Vera Victim" in str(seen["live"])
    timeline = seen["timeline"]
    assert isinstance(timeline, list)
    assert timeline[0] == "press" and {"host receipt", "centre receipt"} <= set(timeline)
    assert timeline.count("location") == 3 and "operator" in timeline
    assert "note by olga: Called her: she is safe <b>at</b> a neighbour's." in str(seen["note"])
    assert seen["operator sees report"] is False
    assert "1 INC-000001" in str(seen["report"]) and "CASE-15" in str(seen["report"])
    assert seen["stranger lands on"] == "/login"
    assert seen["stranger GET"] == [401] * 5 and seen["stranger POST"] == [401] * 4
    assert (tmp_path / "report.png").stat().st_size > 10_000

    # The audit log holds exactly those actions, by whom, on what.
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    # Read from the database itself (no msa store in between).
    rows = sql(state.audit, "SELECT actor, action, subject, source FROM entries ORDER BY seq")
    cli = f"cli:{__import__('getpass').getuser()}"
    assert [r[:3] for r in rows] == [
        (cli, "account.add", "olga"), (cli, "account.add", "sven"),
        ("olga", "login", "olga"), ("olga", "case.view", "INC-000001"),  # the live alarm
        ("olga", "case.view", "INC-000001"),  # its case file opened
        ("olga", "incident.note", "INC-000001"), ("olga", "logout", "olga"),
        ("sven", "login", "sven"), ("sven", "case.view", "INC-000001"),  # live, on his page
        ("sven", "report.view", f"report:{today}"), ("sven", "logout", "sven")]
    assert {r[3] for r in rows} == {"cli", "127.0.0.1"}

    async def verify() -> tuple[int, str]:
        return await msa("centre", "audit", "verify", *where(state))
    code, out = asyncio.run(verify())
    assert code == 0 and f"{len(rows)} entries" in out, out
    # Someone with the database edits who opened the case file: the chain breaks there.
    sql(state.audit, "UPDATE entries SET actor = 'mallory' WHERE seq = 5")
    code, out = asyncio.run(verify())
    assert code == 1 and "does not verify" in out and "entry 5" in out, out
