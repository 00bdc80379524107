"""The simulator's end of the bridge to a virtual board process: JSON objects, one a line,
over loopback TCP. The board connects to the address it is given in MSA_SIMLINK.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Callable
from typing import Any

from .errors import BridgeError

Handler = Callable[[dict[str, Any]], Any]
CLOSE_S = 5.0  # how long close() waits for the bridge's own tasks


class Bridge:
    """One board connection: send(), request() with replies, on(topic, handler)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._handlers: dict[str, Handler] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1 << 20)  # apart from the board's own request ids
        self.closed = asyncio.Event()
        # Calls from the board run one at a time, in the order sent (a stack does the same);
        # replies are read apart from them, so a handler may itself await a request.
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._handler_added = asyncio.Event()
        self._task = asyncio.create_task(self._read())
        self._worker = asyncio.create_task(self._work())

    def on(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler
        self._handler_added.set()

    async def send(self, obj: dict[str, Any]) -> None:
        if self.closed.is_set():
            raise BridgeError("the board is gone")
        self._writer.write((json.dumps(obj) + "\n").encode())
        await self._writer.drain()

    def send_nowait(self, obj: dict[str, Any]) -> None:
        """For callbacks that cannot await: queued in order on the same stream."""
        if not self.closed.is_set():
            self._writer.write((json.dumps(obj) + "\n").encode())

    async def request(self, obj: dict[str, Any], timeout: float = 5.0) -> Any:
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            await self.send({**obj, "id": rid})
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise BridgeError(f"no reply to {obj.get('op')!r} within {timeout} s") from None
        finally:
            self._waiting.pop(rid, None)

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if msg.get("t") == "reply":
                    fut = self._waiting.get(msg.get("id", -1))
                    if fut is not None and not fut.done():
                        if "error" in msg:
                            fut.set_exception(BridgeError(str(msg["error"])))
                        else:
                            fut.set_result(msg.get("result"))
                    continue
                self._inbox.put_nowait(msg)
        except (ConnectionError, json.JSONDecodeError):
            pass
        finally:
            self.closed.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(BridgeError("the board went away"))

    async def _work(self) -> None:
        while True:
            msg = await self._inbox.get()
            topic = str(msg.get("t"))
            # The board may speak before its simulator side has registered: wait for it
            # rather than drop the call (order matters: "active" comes before "advertise").
            while topic not in self._handlers:
                self._handler_added.clear()
                await self._handler_added.wait()
            await self._handle(self._handlers[topic], msg)

    async def _handle(self, handler: Handler, msg: dict[str, Any]) -> None:
        result = handler(msg)
        if inspect.isawaitable(result):
            result = await result
        if "id" in msg:
            await self.send({"t": "reply", "id": msg["id"], "result": result})

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()
        self._worker.cancel()
        # Bounded: a board's teardown must not wait for good on a call that does not end
        # (seen, rarely, in full test runs; not yet explained).
        await asyncio.wait({self._task, self._worker}, timeout=CLOSE_S)
        self.closed.set()


class BridgeServer:
    """Listens on loopback; each board process that connects becomes a Bridge."""

    def __init__(self) -> None:
        self._accepted: asyncio.Queue[Bridge] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._accepted.put(Bridge(reader, writer))

    async def next_bridge(self, timeout: float | None = 10.0) -> Bridge:
        try:
            return await asyncio.wait_for(self._accepted.get(), timeout)
        except asyncio.TimeoutError:
            raise BridgeError(f"no board connected within {timeout} s") from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
