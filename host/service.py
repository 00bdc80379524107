"""The host as a running service (`msa host run`): from a checked configuration it builds the
location source, the channels, the outbox and dispatcher, and one BLE link per button, and
runs them until stopped. The simulator runs the very same object with its bleak backends.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import crashpoint
from .config import HostConfig
from .dispatch import Channel, LocationSource
from .dispatcher import Clock, Dispatcher, Observer, Policy
from .errors import HostError
from .events import ButtonEvent
from .link import Backends, ButtonLink, ButtonTarget
from .outbox import Outbox
from .warn import Delivery, Hook, Warner
from msa.wire.protocol import ButtonKeys
from .receiver import Receiver
from .sequence import SequenceGuard

if TYPE_CHECKING:  # imported when configured: aiohttp is a heavy import
    from .proximity import ProximityClient, ProximitySettings
    from .silentcall import CallEvent, SilentCaller

log = logging.getLogger("msa.host.service")


def _dc09(c: dict[str, Any]) -> Channel:
    from .dc09_channel import Dc09Channel, Dc09Receivers
    common: dict[str, Any] = dict(key=c.get("key"), account=c["account"],
                                  receiver=c["receiver"], line=c["line"],
                                  transport=c["transport"], deadline_s=c["deadline_s"])
    if len(c["receivers"]) > 1:
        return Dc09Receivers(receivers=c["receivers"], **common)
    return Dc09Channel(host=c["host"], port=c["port"], **common)


def _https(c: dict[str, Any]) -> Channel:
    from .https import HttpsChannel
    return HttpsChannel(base_urls=c["urls"], token=c["token"], ca_file=c["ca_file"],
                        deadline_s=c["deadline_s"])


def _sms(c: dict[str, Any]) -> Channel:
    from .sms import SmsChannel
    return SmsChannel(url=c["modem"], number=c["number"], baudrate=int(c["baudrate"]),
                      deadline_s=c["deadline_s"])


CHANNEL_FACTORIES: dict[str, Callable[[dict[str, Any]], Channel]] = {
    "dc09": _dc09, "https": _https, "sms": _sms,
}


def _nmea(c: dict[str, Any]) -> LocationSource:
    from .location import NmeaSerialSource
    return NmeaSerialSource(c["url"], baudrate=int(c["baudrate"]), max_age_s=c["max_age_s"])


def _gpsd(c: dict[str, Any]) -> LocationSource:
    from .location import GpsdSource
    return GpsdSource(c["host"], c["port"], max_age_s=c["max_age_s"])


def _fixed(c: dict[str, Any]) -> LocationSource:
    from .location import FixedSource
    return FixedSource(c["lat"], c["lon"], c["accuracy_m"])


LOCATION_FACTORIES: dict[str, Callable[[dict[str, Any]], LocationSource]] = {
    "nmea": _nmea, "gpsd": _gpsd, "fixed": _fixed,
}


def make_channels(config: HostConfig) -> list[Channel]:
    return [CHANNEL_FACTORIES[c["type"]](c) for c in config.channels]


def make_location(config: HostConfig) -> LocationSource:
    source = config.location["source"]
    if source not in LOCATION_FACTORIES:
        raise HostError(f"location source {source!r} exists only in the simulator"
                        " (msa sim demo)")
    return LOCATION_FACTORIES[source](config.location)


def policy_of(config: HostConfig) -> Policy:
    return Policy(fallback_after_s=config.dispatch["fallback_after_s"],
                  heartbeat_ttl_s=config.dispatch["heartbeat_ttl_s"],
                  track_interval_s=config.tracking["interval_s"],
                  track_window_s=config.tracking["window_s"])


def proximity_settings(config: HostConfig) -> ProximitySettings:
    from .proximity import ProximitySettings
    p = config.proximity
    assert p is not None
    return ProximitySettings(base_url=p["url"], token=p["token"], ca_file=p["ca_file"],
                             report_position=p["report_position"], wait_s=p["poll_wait_s"])


def report_call_event(dispatcher: Dispatcher) -> Callable[[str, CallEvent], None]:
    """The silent call's observer: each event is logged and goes to the centre with the
    incident's other updates (a CALL message in the outbox: wire/call.py)."""
    from msa.wire.call import CallEvent as WireEvent, CallPayload, clean_cause

    def report(incident: str, event: CallEvent) -> None:
        log.info("incident %s: call attempt %d %s%s", incident, event.attempt,
                 event.kind.value, f" ({event.cause})" if event.cause else "")
        dispatcher.call_event(incident, CallPayload(
            WireEvent(event.kind.value), event.at, event.attempt, clean_cause(event.cause)))
    return report


def silent_caller(config: HostConfig, channels: list[Channel], outbox: Outbox,
                  clock: Clock | None,
                  on_call_event: Callable[[str, CallEvent], None] | None = None
                  ) -> SilentCaller | None:
    """The silent call on the sms channel's modem, if its voice block says to call."""
    voice = next((c["voice"] for c in config.channels
                  if c["type"] == "sms" and c.get("voice") and c["voice"]["call"]), None)
    if voice is None:
        return None
    from .silentcall import SilentCaller, VoiceSettings
    from .sms import SmsChannel
    from .voicecall import VoiceCalls
    sms = next((c for c in channels if isinstance(c, SmsChannel)), None)
    if sms is None:
        raise HostError("voice.call = true needs the sms channel's modem, and none runs")
    settings = VoiceSettings(voice["number"], voice["redial_for_s"], voice["redial_first_s"],
                             voice["redial_max_s"], voice["poll_s"])
    return SilentCaller(VoiceCalls(sms.modem), outbox, settings,
                        window_s=config.tracking["window_s"], clock=clock,
                        on_call_event=on_call_event)


class HostService:
    """Everything one host runs. `await run()` until `await stop()`."""

    def __init__(self, config: HostConfig, *, location: LocationSource | None = None,
                 channels: list[Channel] | None = None, backends: Backends | None = None,
                 clock: Clock | None = None, observer: Observer | None = None,
                 on_event: Callable[[ButtonEvent], None] | None = None,
                 on_warning: Callable[[Delivery], None] | None = None) -> None:
        # Owner only: the outbox holds positions and the receiver state the counters.
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(config.state_dir, 0o700)
        self.config = config
        self.location = location or make_location(config)
        self.channels = channels if channels is not None else make_channels(config)
        self.outbox = Outbox(config.state_dir / "outbox.db")
        self.guard = SequenceGuard(config.state_dir / "receiver.db")
        keys = {b.button_id: ButtonKeys.from_master(b.key) for b in config.buttons}
        self.receiver = Receiver(keys, self.guard)
        self.dispatcher = Dispatcher(self.outbox, self.channels, self.location,
                                     policy_of(config), clock, observer)
        self.caller = silent_caller(config, self.channels, self.outbox, clock,
                                    report_call_event(self.dispatcher))
        if self.caller is not None:
            self.dispatcher.set_attempt_hook(self.caller.after_first_attempt)
        self._on_event = on_event
        self.links = [ButtonLink(ButtonTarget(b.button_id, b.address, keys[b.button_id]),
                                 self.receiver, self._sink, backends=backends)
                      for b in config.buttons]
        self.warner: Warner | None = None
        self.proximity: ProximityClient | None = None
        if config.warnings is not None:
            w = config.warnings
            self.warner = Warner(self.links, Hook(w["hook"], w["hook_timeout_s"]),
                                 link_lost_after_s=w["link_lost_after_s"],
                                 on_delivery=on_warning)
        if config.proximity is not None and self.warner is not None:
            from .proximity import ProximityClient
            self.proximity = ProximityClient(proximity_settings(config), self.warner,
                                             config.state_dir, location=self.location,
                                             clock=clock)
        self._stopped = asyncio.Event()

    async def _sink(self, event: ButtonEvent) -> None:
        message = await self.dispatcher.submit(event)  # durable before the link acknowledges
        crashpoint.reached(crashpoint.COMMITTED, message.kind.value)
        if self.warner is not None:
            self.warner.on_event(event)  # aside: the link acknowledges without waiting
        if self._on_event is not None:
            self._on_event(event)

    async def run(self) -> None:
        await self.location.start()
        tasks = [asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
                 *(asyncio.create_task(link.run(), name=f"link-{link.target.button_id:08x}")
                   for link in self.links)]
        if self.warner is not None:
            tasks.append(asyncio.create_task(self.warner.run(), name="warner"))
        if self.proximity is not None:
            tasks.append(asyncio.create_task(self.proximity.run(), name="proximity"))
        try:
            await self._stopped.wait()
        finally:
            if self.proximity is not None:
                await self.proximity.stop()
            if self.warner is not None:
                await self.warner.stop()
            for link in self.links:
                await link.stop()
            await self.dispatcher.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.caller is not None:
                await self.caller.close()
            for channel in self.channels:
                await channel.close()
            await self.location.stop()
            if self.proximity is not None:
                await self.proximity.close()
            self.outbox.close()
            self.guard.close()

    async def stop(self) -> None:
        self._stopped.set()
