"""The button's BLE peripheral: admits only a central that proves the button key, delivers
queued events by indication until the host acknowledges each, takes commands (a WARN plays its
haptic pattern, haptic.py), sends heartbeats, and advertises idle or in encrypted bursts
(advert.py; docs/protocol.md).

Admission rests on the key alone: a central is admitted when it writes a tagged command that
answers the current challenge (TEST, TIME or WARN). An encrypted or bonded link proves nothing
(any phone can pair "Just Works", and NimBLE then calls the link bonded), so a central that has
not proved the key within the admission window is dropped, and it never stops adverts or bursts.

The radio object is passed in. The IRQ handler is registered before the stack starts (NimBLE
asks it for the button's own IRK then) and is guarded: a fault in it is counted, never let
out, since the port disables a handler that raises, and the radio would go deaf. IRQs only
copy and flag; the work happens in run().
"""
import asyncio
import os

from micropython import const

import config
import gatt
from advert import Advertiser
from bonds import Bonds
from frame import GESTURE_REMOTE, KIND_TEST, NONCE_LEN, OP_ACK, OP_TEST, OP_TIME, CommandVerifier
from haptic import Haptic
from version import VERSION

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_IO_NO_INPUT_OUTPUT = const(3)
_ADDR_MODE_RPA = const(2)
_ADMISSION_MS = const(3000)  # an unproven central is dropped after this
# On a board with one connection (Pico W) a stranger holds the host's only way in: shorter.
_ADMISSION_SINGLE_MS = const(1500)
_MIN_MTU = const(37)  # a 34-byte frame plus the 3-byte ATT header
_INBOX_MAX = const(4)
# Adverts refused this long in a row: the radio is dead; run() stops proving life, so the
# watchdog resets the board (a reboot restarts the controller).
_RADIO_DEAD_MS = const(60000)
# A new private address every 5 to 15 minutes, at random, as Android does: an address that
# stays for 30 minutes is what tracker-detection apps flag, and a fixed period links the next
# address to the last by its timing.
_ROTATE_MIN_MS = const(300000)
_ROTATE_SPAN_MS = const(600000)


class _Conn:
    def __init__(self, now_ms):
        self.since_ms = now_ms
        self.admitted = False  # proved the key on this connection
        self.bonded = False  # encrypted with bonding, as the stack says
        self.mtu = 23


class Peripheral:
    """Owns the radio for one boot. start() once, then run() as a task."""

    def __init__(self, ble, board, button, cfg):
        self._ble = ble
        self._board = board
        self._button = button
        key = config.key_bytes(cfg)
        self._verifier = CommandVerifier(key, cfg["button_id"])
        self._ack_timeout_ms = cfg["ack_timeout_ms"]
        self._heartbeat_ms = cfg["heartbeat_s"] * 1000
        self.bonds = Bonds(button.store)
        self._adv = Advertiser(ble, key, board)
        self.haptic = Haptic(board)
        self._key = key
        self._admission_ms = _ADMISSION_SINGLE_MS \
            if getattr(board, "MAX_CONNECTIONS", 4) == 1 else _ADMISSION_MS
        self._conns = {}
        self._inbox = []  # (conn_handle, command bytes) copied by the IRQ
        self._nonce = bytearray(NONCE_LEN)
        self._fresh_nonce = False  # set by a new connection: renew the challenge
        self._wake = asyncio.ThreadSafeFlag()
        self._ticker = None  # the task that wakes run() at its next deadline
        self._inflight = 0
        self._sent_ms = 0
        self._next_heartbeat_ms = 0
        self.commands_accepted = 0  # a host that sent one has subscribed (power.py)
        self.irq_faults = 0  # exceptions caught in the IRQ handler
        self.power = None  # the boot's power policy (power.Power), set by app.py
        self.loops = 0  # run() iterations: the watchdog feeder's proof of life
        self.h = gatt.Handles(0, 0, 0, 0, 0)  # real handles once start() registered them

    def start(self):
        ble = self._ble
        ble.irq(self._irq)  # first: active(True) asks it for the button's own IRK
        ble.active(True)
        encrypted = self._board.BLE_BONDING
        if encrypted:
            # New bonds only while the bond window is open (bonds.py).
            ble.config(bond=not self.bonds.closed, le_secure=True, mitm=False,
                       io=_IO_NO_INPUT_OUTPUT)
        self._privacy = False  # run() turns it on before it first advertises
        ble.config(mtu=64)
        self.h = gatt.register(ble, encrypted, self._key)
        ble.gatts_write(self.h.battery, bytes((self._button.battery.pct,)))
        self._renew_nonce()
        now = self._board.ticks_ms()
        self._next_heartbeat_ms = self._board.ticks_add(now, self._heartbeat_ms)
        r = os.urandom(2)
        self._rotate_ms = self._board.ticks_add(
            now, _ROTATE_MIN_MS + (r[0] << 8 | r[1]) * (_ROTATE_SPAN_MS >> 16))

    def wake(self):
        """Something changed (a new event was queued): reconsider now."""
        self._wake.set()

    def alarm_now(self):
        """A new alarm was queued: indicate it at once if a host is here (no wake-up hop),
        then let run() reconsider everything else."""
        self._deliver(self._board.ticks_ms())
        self._wake.set()

    # --- IRQ: copy, flag, return ---
    def _irq(self, event, data):
        try:
            return self._on_irq(event, data)
        except Exception:  # noqa: BLE001 - an escaping exception would disable the handler
            self.irq_faults += 1
            self._wake.set()
            return None

    def _on_irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self._conns[data[0]] = _Conn(self._board.ticks_ms())
            self._fresh_nonce = True
            self._adv.connected()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self._conns.pop(data[0], None)
        elif event == _IRQ_GATTS_WRITE:
            conn, attr = data
            if attr == self.h.control and len(self._inbox) < _INBOX_MAX:
                self._inbox.append((conn, bytes(self._ble.gatts_read(attr))))
        elif event == _IRQ_MTU_EXCHANGED:
            c = self._conns.get(data[0])
            if c is not None:
                c.mtu = data[1]
        elif event == _IRQ_ENCRYPTION_UPDATE:
            c = self._conns.get(data[0])
            if c is not None:  # a fact for the bond window, never an admission
                c.bonded = bool(data[1] and data[3])
        elif event == _IRQ_GET_SECRET:
            return self.bonds.get(*data)
        elif event == _IRQ_SET_SECRET:
            result = self.bonds.set(*data)
            self._wake.set()
            return result
        elif event != _IRQ_GATTS_INDICATE_DONE:
            return None
        self._wake.set()
        return None

    # --- main loop ---
    async def run(self):
        while True:
            now = self._board.ticks_ms()
            wait = self.turn(now)
            if self.power is not None:  # may deep-sleep here (a board never returns from it)
                wait = await self.power.turn(self, self._button, now, wait)
            self._arm(wait)
            await self._wake.wait()

    def turn(self, now):
        """One pass of the radio loop; returns the ms until it has something to do."""
        dead = self._adv.refused_ms
        if dead < 0 or self._board.ticks_diff(now, dead) < _RADIO_DEAD_MS:
            self.loops += 1  # proof of life, unless adverts were refused for a minute
        self._commands(now)
        self._admission(now)
        self._deliver(now)
        if self._board.ticks_diff(now, self._next_heartbeat_ms) >= 0:
            self.heartbeat(now)
        self.bonds.flush()
        if self._board.BLE_PRIVACY and not self._privacy and self.bonds.closed:
            # Private addresses only once the window is closed: before, the button keeps its
            # identity address so that the technician's host finds it to bond (provisioning,
            # in a controlled place); after, only bonded hosts recognise it.
            self._adv.stop()
            self._ble.config(addr_mode=_ADDR_MODE_RPA)
            self._privacy = True
        if self._privacy and self._board.ticks_diff(now, self._rotate_ms) >= 0 and \
                self._host() is None and not self._adv.bursting:
            self._restart()
        self._adv.turn(now, self._button, any(c.admitted for c in self._conns.values()))
        return self._next_deadline(now, self.haptic.turn(now))

    def _restart(self):
        """A new private address, by a stack restart: NimBLE makes one when it starts, and
        MicroPython gives no other way (its RPA timeout is fixed at build time). Only while
        no host is connected; an unproven central loses its link, which is no loss."""
        self.stop()
        self._ble.active(False)
        self._conns.clear()
        self.start()

    def _arm(self, wait_ms):
        """Wakes run() after wait_ms unless something else wakes it first."""
        if self._ticker is not None:
            self._ticker.cancel()
        self._ticker = asyncio.create_task(self._tick(wait_ms))

    async def _tick(self, wait_ms):
        await asyncio.sleep_ms(wait_ms)
        self._ticker = None
        self._wake.set()

    def _renew_nonce(self):
        self._nonce[:] = os.urandom(NONCE_LEN)
        self._ble.gatts_write(self.h.control, self._nonce)

    def _commands(self, now):
        if self._fresh_nonce:
            self._fresh_nonce = False
            self._renew_nonce()
        while self._inbox:
            conn, cmd = self._inbox.pop(0)
            # A central's write replaced the readable value. The challenge goes back only once
            # the command is judged: the one that stands, or the renewed one. Never the old one
            # just before it is renewed, which a host reading then would answer in vain.
            try:
                op, seq, value = self._verifier.verify(cmd, self._nonce)
            except ValueError:
                self._ble.gatts_write(self.h.control, self._nonce)
                continue  # ignored: the button never says why
            self.commands_accepted += 1
            if op == OP_ACK:  # answers no challenge: a replayed ACK proves nothing
                self._ble.gatts_write(self.h.control, self._nonce)
                if self._button.ack(seq) and seq == self._inflight:
                    self._inflight = 0
                continue
            if op == OP_TEST:
                self._button.raise_event(KIND_TEST, GESTURE_REMOTE, now)
            elif op == OP_TIME:
                self._button.set_time(value)
            else:  # WARN: played where there is a motor; the host is told nothing either way
                self.haptic.play(value, now)
            self._renew_nonce()
            self._proven(conn)

    def _proven(self, conn):
        """`conn` answered the challenge with the key: admitted; over a bond, the bond window
        closes (its bond is the host's); it is told the firmware version."""
        c = self._conns.get(conn)
        if c is None:
            return  # gone meanwhile
        c.admitted = True
        if self._board.BLE_BONDING and c.bonded and not self.bonds.closed:
            self.bonds.close_window()
            self._ble.config(bond=False)
        try:
            self._ble.gatts_notify(conn, self.h.info, VERSION.encode())
        except OSError:
            pass  # the link went: it learns nothing, which is no harm

    def _admission(self, now):
        for conn, c in list(self._conns.items()):
            if not c.admitted and \
                    self._board.ticks_diff(now, c.since_ms) >= self._admission_ms:
                try:
                    self._ble.gap_disconnect(conn)
                except OSError:
                    pass
                self._conns.pop(conn, None)

    def _host(self):
        for conn, c in self._conns.items():
            if c.admitted and c.mtu >= _MIN_MTU:
                return conn
        return None

    def _deliver(self, now):
        conn = self._host()
        if conn is None:
            return
        seq, frame = self._button.next_frame()
        if not seq:
            self._inflight = 0
            return
        due = seq != self._inflight or \
            self._board.ticks_diff(now, self._sent_ms) >= self._ack_timeout_ms
        if due:
            try:
                self._ble.gatts_indicate(conn, self.h.event, frame)
            except OSError:
                return  # the stack is busy or the link went: try again at the deadline
            self._inflight = seq
            self._sent_ms = now

    def heartbeat(self, now):
        """A heartbeat to every admitted central now; True if one of them took it."""
        self._next_heartbeat_ms = self._board.ticks_add(now, self._heartbeat_ms)
        before = self._button.battery.pct
        pct = self._button.sample_battery()
        self._ble.gatts_write(self.h.battery, bytes((pct,)))
        sent = False
        for conn, c in list(self._conns.items()):  # IRQs may change the table meanwhile
            if not c.admitted or c.mtu < _MIN_MTU:
                continue
            try:
                self._ble.gatts_notify(conn, self.h.status, self._button.heartbeat_frame())
                sent = True
                if pct != before:
                    self._ble.gatts_notify(conn, self.h.battery)
            except OSError:
                pass
        return sent

    @property
    def connected(self):
        return bool(self._conns)

    def stop(self):
        """Before a deep sleep: adverts off, bonds on flash, every central disconnected."""
        self._adv.stop()
        self.bonds.flush()
        for conn in list(self._conns):
            try:
                self._ble.gap_disconnect(conn)
            except OSError:
                self._conns.pop(conn, None)

    def off(self):
        """The radio off: deep sleep needs the controller disabled."""
        self._ble.active(False)

    def _next_deadline(self, now, haptic_ms):
        diff = self._board.ticks_diff
        deadlines = [diff(self._next_heartbeat_ms, now)]
        for wait in (haptic_ms, self._adv.wait_ms(now, self._button, self._host() is not None)):
            if wait >= 0:
                deadlines.append(wait)
        if self._inflight:
            deadlines.append(self._ack_timeout_ms - diff(now, self._sent_ms))
        for c in self._conns.values():
            if not c.admitted:
                deadlines.append(self._admission_ms - diff(now, c.since_ms))
        if self._privacy:
            deadlines.append(diff(self._rotate_ms, now))
        return max(1, min(deadlines))
