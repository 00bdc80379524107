"""The whole chain, simulated where it must be and real everywhere else: the unmodified
firmware in MicroPython on a virtual board, Bumble between it and the host, the real host
service (outbox, dispatcher, channels), a simulated GPS streaming NMEA and a simulated GSM
modem (both reached by pyserial URL), and the reference centre with its case registry.
Used by `msa sim demo`, the end-to-end tests and the benchmarks.

With a deployment's own configuration, only the button (and its BLE link) is simulated: the
configured centre, modem and GPS are used as they are.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.common.files import write_private
from msa.host import config as host_config
from msa.wire.message import Message
from msa.host.dispatch import Receipt
from msa.host.events import ButtonEvent
from msa.host.link import Backends
from msa.host.location import Track
from msa.wire.protocol import Kind
from msa.host.service import HostService

from .bleak_backend import BumbleClient, BumbleScanner
from .central import Central
from .gps import SimulatedGps
from .modem import DeliveredSms, SimModem
from .modem_voice import Outcome
from .world import BUTTON_ADDRESS, HOST_ADDRESS, World, hold_edges

# A walk through Ghent's centre: the demo victim's route when the alarm goes off.
WALK = Track(((51.05434, 3.71742), (51.05520, 3.72010), (51.05630, 3.72250),
              (51.05700, 3.72600)))
HOST_PHONE = "+32470000002"  # the simulated host modem's own number, registered with the case
DEMO_CASE = Case("DEMO-2026-001", victim="(demo) A. Victim", victim_phone="+32470000001",
                 suspect="(demo) B. Suspect", suspect_notes="ex-partner, prior threats",
                 measures=("restraining order: 500 m", "no contact"), weapons=True,
                 host_phone=HOST_PHONE)
SMS_NUMBER = "+32470999112"
VOICE_NUMBER = "+32470999101"  # the centre's voice line, for the silent call (voice=True)
ANSWER_AFTER_S = 1.0  # the simulated operator picks up the silent call this long after ATD


def _secret(path: Path, text: str) -> str:
    return write_private(path, text + "\n").name


@dataclass
class Timing:
    """One press, wall clock, from the first edge of the press."""

    press_at: float
    host_at: float | None = None
    acked_at: float | None = None
    channel: str = ""
    reference: str = ""  # the centre's incident reference, where the channel gives one


class Chain:
    """Build inside a running loop; `await start()`, `await press()`, `await close()`."""

    def __init__(self, root: Path, *, config_path: Path | None = None,
                 channels: tuple[str, ...] = ("https", "sms"), extra_toml: str = "",
                 centre_key: bytes | None = None, voice: bool = False,
                 **firmware: Any) -> None:
        self.root = root
        self.config_path = config_path
        self.channel_order = channels
        self.voice = voice  # the sms channel places the silent call (docs/dispatch.md)
        self.extra_toml = extra_toml
        self.firmware = firmware
        # K_c: the button's and the centre's, never in the host's configuration. With a
        # deployment's own configuration, the one its centre registered for the button.
        self.centre_key = centre_key or secrets.token_bytes(32)
        self.centre: RunningCentre | None = None
        self.gps: SimulatedGps | None = None
        self.modem: SimModem | None = None
        self.world: World | None = None
        self.host: HostService | None = None
        self._host_task: asyncio.Task[None] | None = None
        self._central: Central | None = None
        self.backends: Backends | None = None
        self.events: asyncio.Queue[ButtonEvent] = asyncio.Queue()
        self.receipts: asyncio.Queue[tuple[Message, Receipt]] = asyncio.Queue()

    async def _own_surroundings(self) -> Path:
        """A reference centre, GPS and modem of our own, and a configuration pointing at them."""
        self.centre = await start_centre(CentreConfig(state_dir=self.root / "centre",
                                                      dc09_port=0))
        assert self.centre.dc09 is not None
        self.centre.centre.registry.put_case(DEMO_CASE)
        issued = self.centre.issue_host(DEMO_CASE.case_ref)  # as `msa case issue`
        inbox = self.centre.sms

        async def on_sms(sms: DeliveredSms) -> None:
            inbox.receive(HOST_PHONE, sms.text, sms.time)
        self.modem = SimModem(on_sms=on_sms)
        self.modem.voice.default = Outcome.answer(ANSWER_AFTER_S)
        await self.modem.start()
        self.gps = SimulatedGps(WALK, rate_hz=1.0)
        await self.gps.start()
        key = secrets.token_bytes(32)
        button_id = secrets.randbelow(0xFFFFFFFE) + 1
        self.centre.centre.registry.register(button_id, self.centre_key, DEMO_CASE.case_ref)
        conf = self.root / "host"
        conf.mkdir(parents=True, exist_ok=True)
        blocks = {
            "https": f'[[channel]]\ntype = "https"\nurl = "{self.centre.api_url}"\n'
                     f'token_file = "{_secret(conf / "api.token", issued.token)}"\n'
                     f'ca_file = "{self.centre.tls.ca_cert}"\ndeadline_s = 2.0\n',
            "dc09": f'[[channel]]\ntype = "dc09"\nhost = "127.0.0.1"\n'
                    f'port = {self.centre.dc09.port}\naccount = "{issued.host.dc09_account}"\n'
                    f'key_file = "{_secret(conf / "dc09.key", issued.dc09_key.hex())}"\n',
            "sms": f'[[channel]]\ntype = "sms"\nmodem = "{self.modem.url}"\n'
                   f'number = "{SMS_NUMBER}"\ndeadline_s = 30\n'
                   + (f'[channel.voice]\nnumber = "{VOICE_NUMBER}"\ncall = true\n'
                      if self.voice else ""),
        }
        text = (f'[host]\nstate_dir = "state"\n\n[[button]]\nid = "{button_id:#010x}"\n'
                f'address = "{BUTTON_ADDRESS}"\n'
                f'key_file = "{_secret(conf / "button.key", key.hex())}"\n\n'
                f'[location]\nsource = "nmea"\nurl = "{self.gps.url}"\nmax_age_s = 5\n\n'
                + self.extra_toml + "\n" + "\n".join(blocks[c] for c in self.channel_order))
        path = conf / "msa-host.toml"
        path.write_text(text)
        return path

    async def start(self, with_host: bool = True) -> None:
        """Without the host, the button waits unbonded and `backends` reach it as the host's
        radio would (for the technicians' commands)."""
        path = self.config_path or await self._own_surroundings()
        self.config_path = path
        config = host_config.load(path)
        button = config.buttons[0]
        self.world = World(self.root / "sim", key=button.key, button_id=button.button_id,
                           address=button.address, centre_key=self.centre_key,
                           **self.firmware)
        await self.world.start(with_host=False)
        central = Central(self.world.air, HOST_ADDRESS, self.root / "sim" / "host-bonds")
        await central.start()
        self._central = central
        self.backends = Backends(BumbleScanner, BumbleClient, {"central": central})
        if with_host:
            self.start_host()

    def start_host(self) -> None:
        """The host service comes (the button may have been waiting for it, unbonded)."""
        assert self.config_path is not None and self.backends is not None

        async def observe(message: Message, receipt: Receipt) -> None:
            self.receipts.put_nowait((message, receipt))
        self.host = HostService(host_config.load(self.config_path), backends=self.backends,
                                observer=observe, on_event=self.events.put_nowait)
        self._host_task = asyncio.create_task(self.host.run())

    async def event(self, kind: Kind, timeout: float = 20.0) -> ButtonEvent:
        async def wait() -> ButtonEvent:
            while True:
                e = await self.events.get()
                if e.frame.kind == kind:
                    return e
        return await asyncio.wait_for(wait(), timeout)

    async def receipt(self, key: str, timeout: float = 30.0) -> Receipt:
        async def wait() -> Receipt:
            while True:
                m, r = await self.receipts.get()
                if m.key == key:
                    return r
        return await asyncio.wait_for(wait(), timeout)

    async def press(self, hold_ms: int = 2500) -> tuple[Timing, ButtonEvent | None]:
        """A bouncy hold; returns when the centre acknowledged the alarm (or, for a press
        too short to be an alarm, at once with no event)."""
        assert self.world is not None
        timing = Timing(press_at=time.time())
        await self.world.board.press(hold_edges(hold_ms))
        threshold_ms = int(self.firmware.get("hold_ms", 2000))
        if hold_ms < threshold_ms:
            return timing, None
        event = await self.event(Kind.ALARM)
        timing.host_at = event.received_at
        f = event.frame
        receipt = await self.receipt(Message.event_key(f.button_id, f.boot_id, f.seq))
        timing.acked_at = receipt.acked_at
        timing.channel = receipt.channel
        timing.reference = receipt.reference
        return timing, event

    async def close(self) -> None:
        if self.host is not None:
            await self.host.stop()
        if self._host_task is not None:
            await asyncio.gather(self._host_task, return_exceptions=True)
        if self._central is not None:
            await self._central.close()
        if self.world is not None:
            await self.world.close()
        for part in (self.gps, self.modem):
            if part is not None:
                await part.stop()
        if self.centre is not None:
            await self.centre.stop()
