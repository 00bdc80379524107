"""The simulated air served to other processes (simulator/radio.py): a host joining over HCI on
TCP hears the board's adverts, keeps its identity with its bonds, and leaves the air when it
goes; and the configuration's `adapter` choosing it."""
from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from msa.host.config import ConfigError
from msa.host.config import load as load_config
from msa.simulator.air import Air
from msa.simulator.central import Central, Sighting
from msa.simulator.errors import CentralError
from msa.simulator.radio import IDENTITY_FILE, open_central, serve_radio

ADVERTISER = "C0:00:00:00:00:09"


async def heard(central: Central, address: str) -> Sighting:
    found: asyncio.Future[Sighting] = asyncio.get_running_loop().create_future()

    def seen(s: Sighting) -> None:
        if s.name == address and not found.done():
            found.set_result(s)
    token = object()
    await central.listen(token, seen)
    try:
        return await asyncio.wait_for(found, 10)
    finally:
        await central.unlisten(token)


def test_a_remote_host_hears_the_air_keeps_its_identity_and_leaves_when_it_goes(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        air = Air()
        server = await serve_radio(air, "127.0.0.1", 0)
        where = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        local = Central(air, ADVERTISER, None, name="advertiser")
        await local.start()
        await local.device.start_advertising()
        try:
            remote = await open_central(where, tmp_path / "a")
            await heard(remote, ADVERTISER)
            assert len(air.controllers) == 2
            address = remote.address
            saved = json.loads((tmp_path / "a" / IDENTITY_FILE).read_text())
            assert saved["address"] == address and int(address[:2], 16) >= 0xC0
            assert air.find(address) in air.controllers  # it set its own address on the air
            await remote.close()
            for _ in range(100):  # the server notices the closed connection
                if len(air.controllers) == 1:
                    break
                await asyncio.sleep(0.02)
            assert len(air.controllers) == 1
            again = await open_central(where, tmp_path / "a")
            other = await open_central(where, tmp_path / "b")
            try:
                await heard(again, ADVERTISER)
                assert again.address == address != other.address
            finally:
                await again.close()
                await other.close()
        finally:
            await local.close()
            server.close()
    asyncio.run(scenario())


def test_no_radio_at_the_address_says_how_to_start_one(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def scenario() -> None:
        with pytest.raises(CentralError, match=f"msa sim board --radio 127.0.0.1:{port}"):
            await open_central(f"127.0.0.1:{port}", tmp_path)
        with pytest.raises(CentralError, match="expected HOST:PORT"):
            await open_central("7001", tmp_path)
    asyncio.run(scenario())


def test_a_damaged_identity_file_is_named(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_FILE).write_text("{")

    async def scenario() -> None:
        with pytest.raises(CentralError, match="damaged"):
            await open_central("127.0.0.1:1", tmp_path)
    asyncio.run(scenario())


@pytest.mark.parametrize("adapter, ok", [
    ("hci1", True), ("sim:127.0.0.1:7001", True), ("sim:7001", False),
    ("sim:127.0.0.1:99999", False), ("", False), ("hci 1", False)])
def test_the_configuration_s_adapter_is_checked(tmp_path: Path, adapter: str, ok: bool) -> None:
    key = tmp_path / "button.key"
    key.write_text("00" * 32)
    key.chmod(0o600)
    path = tmp_path / "host.toml"
    path.write_text(f'[host]\nstate_dir = "s"\nadapter = "{adapter}"\n\n[[button]]\n'
                    'id = 1\naddress = "C0:00:00:00:00:01"\nkey_file = "button.key"\n\n'
                    '[location]\nsource = "fixed"\nlat = 1.0\nlon = 2.0\n\n'
                    '[[channel]]\ntype = "sms"\nmodem = "/dev/null"\nnumber = "+32470000000"\n')
    if ok:
        assert load_config(path).adapter == adapter
    else:
        with pytest.raises(ConfigError, match="host.adapter"):
            load_config(path)
