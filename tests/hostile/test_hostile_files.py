"""State folders 0700, databases and their WAL/SHM files 0600, on the centre and the host
(issue 12, part 8): registry.db holds every button's key and the case files."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from hostile_kit import Live, alarm

from msa.host.outbox import Outbox


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_centre_keeps_its_files_private(live: Live) -> None:
    assert live.send(alarm(1))[0] == 201  # the WAL and SHM files exist once written to
    root = live.root
    assert _mode(root) == 0o700 and _mode(root / "tls") == 0o700
    files = [p for p in root.iterdir() if p.name.startswith(("registry.db", "records.db"))]
    assert {p.name for p in files} >= {"registry.db", "registry.db-wal", "registry.db-shm",
                                       "records.db", "records.db-wal", "records.db-shm"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_the_host_outbox_is_private_and_an_old_open_one_is_tightened(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        (tmp_path / "outbox.db").touch(mode=0o644)  # made by an earlier version
        (tmp_path / "outbox.db-wal").touch(mode=0o644)
        box = Outbox(tmp_path / "outbox.db")
        box.put(alarm(1))
        for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name
        box.close()
        fresh = Outbox(tmp_path / "new" / "outbox.db") if (tmp_path / "new").mkdir() is None \
            else None
        assert fresh is not None
        fresh.put(alarm(1))
        for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
            assert _mode(tmp_path / "new" / name) == 0o600, name
        fresh.close()
    finally:
        os.umask(old)


def test_the_host_service_makes_its_state_folder_private(tmp_path: Path) -> None:
    from msa.host import config
    from msa.host.service import HostService
    key = tmp_path / "b.key"
    key.write_text("11" * 32)
    key.chmod(0o600)
    text = (f'[host]\nstate_dir = "state"\n[[button]]\nid = 1\naddress = "C0:00:00:00:00:01"\n'
            f'key_file = "b.key"\n[location]\nsource = "fixed"\nlat = 51.0\nlon = 3.7\n'
            f'[[channel]]\ntype = "dc09"\nhost = "127.0.0.1"\nport = 9\n')
    (tmp_path / "host.toml").write_text(text)
    (tmp_path / "state").mkdir(mode=0o755)
    service = HostService(config.load(tmp_path / "host.toml"))
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(tmp_path / "state" / "outbox.db") == 0o600
    assert _mode(tmp_path / "state" / "receiver.db") == 0o600
    service.outbox.close()
    service.guard.close()
