"""The virtual board's end of the bridge to the simulator: JSON objects, one a line, over a
TCP connection to the address in MSA_SIMLINK. Simulated hardware (board, bluetooth) talks to
the simulator only through this module.
"""
import asyncio
import json
import os
import select
import socket

_link = None


class _Waiter:
    def __init__(self):
        self.flag = asyncio.ThreadSafeFlag()
        self.reply = {}  # type: dict


class Link:
    """send() from anywhere; on(topic, handler) for incoming; await request() for replies."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        sock = socket.socket()
        sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        sock.setblocking(False)
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLOUT)
        self._handlers = {}  # type: dict
        self._waiting = {}  # type: dict
        self._next_id = 1
        self._buf = b""  # received bytes not yet a whole line
        self._pumping = False

    def send(self, obj):
        """Writes one message whole, waiting briefly if the socket buffer is full."""
        data = memoryview((json.dumps(obj) + "\n").encode())
        while data:
            try:
                n = self._sock.send(data)
            except OSError:
                n = 0
            data = data[n:]
            if data:
                self._poll.poll(100)

    def on(self, topic, handler):
        self._handlers[topic] = handler

    async def request(self, obj):
        """Sends obj with a fresh id and returns the simulator's reply result."""
        rid = self._next_id
        self._next_id += 1
        waiter = _Waiter()
        self._waiting[rid] = waiter
        obj["id"] = rid
        self.send(obj)
        await waiter.flag.wait()
        reply = waiter.reply
        if "error" in reply:
            raise OSError(reply["error"])
        return reply.get("result")

    def _dispatch(self, msg):
        topic = msg.get("t")
        if topic == "reply":
            waiter = self._waiting.pop(msg.get("id"), None)
            if waiter is not None:
                waiter.reply = msg
                waiter.flag.set()
            return
        handler = self._handlers.get(topic)
        rid = msg.get("id")
        try:
            result = handler(msg) if handler is not None else None
            if rid is not None:
                self.send({"t": "reply", "id": rid, "result": result})
        except Exception as exc:  # the simulator gets the fault; the board keeps running
            if rid is not None:
                self.send({"t": "reply", "id": rid, "error": repr(exc)})
            else:
                raise

    def _feed(self, data):
        """Dispatches every whole line received so far; an IRQ handler's own calls into the
        radio do not dispatch again (a port's IRQs do not nest)."""
        self._buf += data
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                end = self._buf.find(b"\n")
                if end < 0:
                    break
                line, self._buf = self._buf[:end], self._buf[end + 1:]
                self._dispatch(json.loads(line))
        finally:
            self._pumping = False

    def pump(self):
        """Delivers what has arrived without waiting: called inside the simulated radio's
        calls, so that IRQs preempt the firmware between two of them, as on the ports."""
        try:
            data = self._sock.recv(4096)
        except OSError:
            return  # nothing waiting (EAGAIN)
        if not data:
            raise SystemExit(3)
        self._feed(data)

    async def task(self):
        reader = asyncio.StreamReader(self._sock)
        while True:
            data = await reader.read(4096)
            if not data:
                raise SystemExit(3)  # the simulator is gone: so is the board's world
            self._feed(data)


def get():
    """The process-wide link, connected on first use (its reader runs once asyncio runs)."""
    global _link
    if _link is None:
        _link = Link(os.getenv("MSA_SIMLINK") or "127.0.0.1:0")
        asyncio.create_task(_link.task())
    return _link
