"""Keeps one bonded button over BLE through bleak's public API: finds it, connects, pairs,
subscribes, proves itself with a TIME command, acknowledges each event only after the
dispatch sink has stored it, reconnects with backoff, and hears alarm bursts while apart.

The same code runs on BlueZ, CoreBluetooth and WinRT; the simulator plugs in as bleak
backends (`Backends(scanner, client, kwargs)`).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakCharacteristicNotFoundError, BleakError

from .errors import HostError, LinkError
from .events import ButtonEvent, Via
from msa.wire.protocol import (FRAME_LEN, NONCE_LEN, ButtonKeys, Op, Pattern,
                               burst_from_advert, encode_command)
from .receiver import Receiver

log = logging.getLogger("msa.host.link")

# The alarm service's UUIDs are derived from each button's key (ButtonKeys.gatt).
BATTERY_LEVEL_CHAR = "00002a19-0000-1000-8000-00805f9b34fb"

ACK_TIMEOUT_S = 5.0
CHALLENGE_PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.0)  # re-reads of a challenge not yet back
MIN_MTU = FRAME_LEN + 3  # a whole frame in one indication (the ATT header is 3 bytes)

EventSink = Callable[[ButtonEvent], Awaitable[None]]


@dataclass(frozen=True)
class ButtonTarget:
    """The button this host keeps: its id, its identity address and its keys."""

    button_id: int
    address: str
    keys: ButtonKeys


@dataclass(frozen=True)
class Backends:
    """bleak backends to use instead of the platform's (the simulator's, in tests), with the
    keyword arguments they take."""

    scanner: type[Any] | None  # None: the platform's own
    client: type[Any] | None
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Backoff:
    """Reconnection delays: doubling from `first_s` up to `max_s`, with some jitter."""

    first_s: float = 0.2
    max_s: float = 5.0

    def delays(self) -> Any:
        delay = self.first_s
        while True:
            yield delay * random.uniform(0.8, 1.2)
            delay = min(delay * 2, self.max_s)


class ButtonLink:
    """One button's link; run() until stop(). Events go to `sink` in arrival order."""

    def __init__(self, target: ButtonTarget, receiver: Receiver, sink: EventSink, *,
                 backends: Backends | None = None,
                 backoff: Backoff | None = None, connect_timeout_s: float = 10.0) -> None:
        self.target = target
        self._receiver = receiver
        self._sink = sink
        self._backends = backends
        self._backoff = backoff or Backoff()
        self._timeout = connect_timeout_s
        self._inbox: asyncio.Queue[tuple[bytes, Via]] = asyncio.Queue()
        self._found: asyncio.Queue[BLEDevice] = asyncio.Queue(maxsize=1)
        self._client: BleakClient | None = None
        self._disconnected = asyncio.Event()
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0
        # Set when an attempt finds no alarm service for our key; cleared only when one finds
        # it, so that a retry in progress does not hide the finding from a waiting technician.
        self.wrong_key = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()

    # --- callbacks from bleak: copy into the queue, nothing more ---
    def _on_indication(self, _char: Any, data: bytearray) -> None:
        self._inbox.put_nowait((bytes(data), Via.GATT))

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        payload = burst_from_advert(adv.manufacturer_data)
        if payload is not None:
            self._inbox.put_nowait((payload, Via.ADVERT))
        if device.address.upper() == self.target.address.upper() and self._found.empty():
            self._found.put_nowait(device)

    def _on_disconnect(self, _client: BleakClient) -> None:
        self.connected.clear()
        self._disconnected.set()

    # --- the loops ---
    async def run(self) -> None:
        """Keeps the button until stop(); returns when stopped."""
        worker = asyncio.create_task(self._process())
        try:
            delays = self._backoff.delays()
            while not self._stopping.is_set():
                try:
                    await self._session()
                    delays = self._backoff.delays()  # a session happened: start over
                except (BleakError, asyncio.TimeoutError, OSError, LinkError) as exc:
                    log.info("link to button %#010x failed: %s", self.target.button_id, exc)
                except Exception:  # noqa: BLE001 - a bug must not end the watch over a button
                    log.exception("link to button %#010x failed unexpectedly",
                                  self.target.button_id)
                if self._stopping.is_set():
                    break
                try:
                    await asyncio.wait_for(self._stopping.wait(), next(delays))
                except asyncio.TimeoutError:
                    pass
        finally:
            worker.cancel()
            for task in list(self._acks):
                task.cancel()
            await asyncio.gather(worker, *self._acks, return_exceptions=True)

    async def stop(self) -> None:
        self._stopping.set()
        self._disconnected.set()
        client = self._client
        if client is not None and client.is_connected:
            await client.disconnect()

    async def _find(self) -> BLEDevice:
        while not self._found.empty():
            self._found.get_nowait()
        b = self._backends
        scanner = BleakScanner(detection_callback=self._on_advert,
                               backend=b.scanner if b else None, **(b.kwargs if b else {}))
        await scanner.start()
        try:
            stop = asyncio.ensure_future(self._stopping.wait())
            found = asyncio.ensure_future(self._found.get())
            done, _ = await asyncio.wait({stop, found}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if found not in done:
                found.cancel()
                raise LinkError(self.target.button_id, "stopped while scanning")
            return found.result()
        finally:
            await scanner.stop()

    async def _session(self) -> None:
        device = await self._find()
        log.debug("found button %#010x at %s", self.target.button_id, device.address)
        self._disconnected.clear()
        if self._stopping.is_set():
            # stop() came while the scan was finding the button: its wake-up was just cleared.
            raise LinkError(self.target.button_id, "stopped while scanning")
        b = self._backends
        client = BleakClient(device, disconnected_callback=self._on_disconnect,
                             timeout=self._timeout, backend=b.client if b else None,
                             **(b.kwargs if b else {}))
        self._client = client
        await client.connect()
        log.debug("connected to button %#010x", self.target.button_id)
        try:
            await client.pair()
            log.debug("link to button %#010x encrypted", self.target.button_id)
            if client.mtu_size < MIN_MTU:
                raise LinkError(self.target.button_id, f"ATT MTU {client.mtu_size} < {MIN_MTU}")
            uuids = self.target.keys.gatt
            try:
                await client.start_notify(uuids.event, self._on_indication)
            except BleakCharacteristicNotFoundError:
                # The alarm service's UUIDs come from the key: this button holds another.
                self.wrong_key.set()
                raise LinkError(self.target.button_id,
                                "the button has no alarm service for this host's key") from None
            self.wrong_key.clear()
            await client.start_notify(uuids.status, self._on_indication)
            await self._command(Op.TIME, int(time.time()))
            self.connections += 1
            self.connected.set()
            await self._disconnected.wait()
        finally:
            self.connected.clear()
            self._client = None
            if client.is_connected:
                await client.disconnect()

    async def _command(self, op: Op, value: int = 0, seq: int = 0) -> None:
        client = self._client
        if client is None or not client.is_connected:
            raise LinkError(self.target.button_id, "not connected")
        nonce = b""
        if op is not Op.ACK:
            # Just after another command the characteristic holds that command until the
            # button has judged it and written its challenge back: read again shortly.
            for pause_s in CHALLENGE_PAUSES_S:
                nonce = bytes(await client.read_gatt_char(self.target.keys.gatt.control))
                if len(nonce) == NONCE_LEN:
                    break
                await asyncio.sleep(pause_s)
            if len(nonce) != NONCE_LEN:
                raise LinkError(self.target.button_id, f"challenge of {len(nonce)} bytes")
        cmd = encode_command(self.target.keys, self.target.button_id, op, seq, value, nonce)
        await client.write_gatt_char(self.target.keys.gatt.control, cmd, response=True)

    async def request_test(self) -> None:
        """Asks the button for a TEST alarm through its own event path."""
        await self._command(Op.TEST)

    async def warn(self, pattern: Pattern) -> None:
        """Asks the button to vibrate `pattern` (docs/protocol.md, WARN). Returns once the
        button's stack took the write; the button never says whether it vibrated (a board
        without a motor verifies the WARN and plays nothing). LinkError when not connected or
        when the write fails."""
        pattern = Pattern(pattern)  # ValueError for a number outside the table
        try:
            await self._command(Op.WARN, value=int(pattern))
        except (BleakError, OSError, asyncio.TimeoutError) as exc:
            raise LinkError(self.target.button_id, f"warning not sent: {exc}") from exc

    async def _process(self) -> None:
        while True:
            raw, via = await self._inbox.get()
            out = self._receiver.frame(raw, via, commit=False) if via is Via.GATT else \
                self._receiver.advert(raw, commit=False)
            if out.event is not None:
                # Stored durably first, then the number is spent, then acknowledged: a crash
                # anywhere in between makes the button send it again, and the store dedupes.
                try:
                    await self._sink(out.event)
                    self._receiver.commit(out.event)
                except HostError as exc:
                    # Not stored, so not acknowledged: the button keeps it and sends it again.
                    log.error("event from button %#010x not stored: %s", out.event.button_id,
                              exc)
                    continue
            if out.ack is not None:
                # Aside, so that an ack stuck on a dying link never holds up later frames.
                task = asyncio.create_task(self._ack(out.ack))
                self._acks.add(task)
                task.add_done_callback(self._acks.discard)

    async def _ack(self, seq: int) -> None:
        try:
            await asyncio.wait_for(self._command(Op.ACK, seq=seq), ACK_TIMEOUT_S)
        except (BleakError, LinkError, asyncio.TimeoutError) as exc:
            # The button retransmits; the duplicate will be acknowledged then.
            log.info("ack %d not sent: %s", seq, exc)
