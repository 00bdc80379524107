"""Operator accounts (issue 15, part 1): the account store in the registry's database. Round
trips, refusals that write nothing, salted scrypt hashes, the failed-login lockout on an
injected clock (kept in the database), and an unknown name costing the same scrypt work."""
from __future__ import annotations

import time

import pytest
from backends import State, sql, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401

from msa.centre import accounts as acc
from msa.centre.accounts import Account, AccountLocked, Accounts, Role
from msa.centre.errors import RegistryError
from msa.centre.registry import Registry
from msa.centre.storage import Place

from staff import cheap  # noqa: F401  (a fixture)

PASSWORD = "correct horse battery"
OTHER = "another long passphrase"
T0 = 1_800_000_000.0


@pytest.fixture
def path(state: State) -> Place:
    return state.registry


@pytest.fixture
def accounts(path: Place, cheap: None) -> Accounts:
    return Accounts(Registry(path))


def stored(path: Place) -> list[tuple[str, str, str]]:
    """The accounts table as the database holds it (name, role, hash), read past the module."""
    return [(str(a), str(b), str(c)) for a, b, c in
            sql(path, "SELECT name, role, password_hash FROM accounts ORDER BY id")]


def test_add_check_passwd_remove_round_trip(accounts: Accounts) -> None:
    added = accounts.add("alice", "operator", PASSWORD)
    assert added == Account("alice", Role.OPERATOR, added.created_at)
    assert accounts.get("alice") == added == accounts.get("ALICE")  # names ignore case
    assert accounts.check("alice", PASSWORD, T0) == added
    assert accounts.check("alice", PASSWORD + "x", T0) is None
    assert accounts.check("alice", PASSWORD[:-1], T0) is None
    assert accounts.set_password("alice", OTHER)
    assert accounts.check("alice", PASSWORD, T0) is None
    assert accounts.check("alice", OTHER, T0) == added
    assert accounts.remove("alice")
    assert not accounts.remove("alice")
    assert accounts.get("alice") is None and accounts.all() == []
    assert accounts.check("alice", OTHER, T0) is None
    assert not accounts.set_password("alice", PASSWORD)
    assert not accounts.set_role("alice", "supervisor")
    assert stored(accounts.place)[0][2] == ""  # a removed account's hash is forgotten
    # The name may be given again, to a new account.
    assert accounts.add("alice", Role.SUPERVISOR, OTHER).role is Role.SUPERVISOR


def test_roles(accounts: Accounts) -> None:
    accounts.add("op", "operator", PASSWORD)
    accounts.add("sup", Role.SUPERVISOR, PASSWORD)
    accounts.add("adm", "administrator", PASSWORD)
    assert [(a.name, a.role) for a in accounts.all()] == [
        ("adm", Role.ADMINISTRATOR), ("op", Role.OPERATOR), ("sup", Role.SUPERVISOR)]
    assert accounts.set_role("op", "supervisor")
    assert accounts.check("op", PASSWORD, T0) == Account("op", Role.SUPERVISOR,
                                                         accounts.all()[1].created_at)
    with pytest.raises(RegistryError, match="role 'root'"):
        accounts.set_role("op", "root")
    op = accounts.get("op")
    assert op is not None and op.role is Role.SUPERVISOR


@pytest.mark.parametrize("name, role, password, message", [
    ("", "operator", PASSWORD, "account name"),
    ("x" * 65, "operator", PASSWORD, "account name"),
    ("bob smith", "operator", PASSWORD, "account name"),
    ("bob/x", "operator", PASSWORD, "account name"),
    ("bøb", "operator", PASSWORD, "account name"),
    ("bob", "root", PASSWORD, "role 'root'"),
    ("bob", "Operator", PASSWORD, "role"),
    ("bob", "operator", "x" * 11, "12 to 1024 characters"),
    ("bob", "operator", "x" * 1025, "12 to 1024 characters"),
    ("bob", "operator", "", "12 to 1024 characters"),
])
def test_bad_input_refused_nothing_written(accounts: Accounts, name: str, role: str,
                                           password: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        accounts.add(name, role, password)
    assert accounts.all() == [] and stored(accounts.place) == []


def test_bad_password_or_duplicate_name_changes_nothing(accounts: Accounts) -> None:
    accounts.add("bob", "operator", PASSWORD)
    before = stored(accounts.place)
    with pytest.raises(RegistryError, match="12 to 1024"):
        accounts.set_password("bob", "short")
    with pytest.raises(RegistryError, match="in service already"):
        accounts.add("BOB", "administrator", OTHER)
    assert stored(accounts.place) == before
    assert accounts.check("bob", PASSWORD, T0) is not None
    accounts.add("x" * 64, "operator", "y" * 1024)  # the bounds themselves are allowed
    assert accounts.check("x" * 64, "y" * 1024, T0) is not None
    assert accounts.check("x" * 64, "y" * 1024 + "z", T0) is None  # not cut to 1024


def test_hash_is_salted_and_not_the_password(accounts: Accounts) -> None:
    accounts.add("a", "operator", PASSWORD)
    accounts.add("b", "operator", PASSWORD)
    (_, _, ha), (_, _, hb) = stored(accounts.place)
    assert ha != hb
    for h in (ha, hb):
        assert PASSWORD not in h and PASSWORD.encode().hex() not in h
        scheme, n, r, p, salt, key = h.split("$")
        assert (scheme, n, r, p) == ("scrypt", str(2 ** 10), "8", "1")
    assert ha.split("$")[4] != hb.split("$")[4]
    assert PASSWORD not in repr(accounts.all()) + repr(accounts)


def test_default_cost_is_stored_and_raised_cost_rehashes(path: Place,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = Accounts(Registry(path))
    accounts.add("a", "operator", PASSWORD)
    assert stored(path)[0][2].startswith("scrypt$32768$8$1$")  # the default is not weakened
    monkeypatch.setattr(acc, "SCRYPT_N", 2 ** 10)
    old = stored(path)[0][2]
    assert accounts.check("a", PASSWORD, T0) is not None  # verified at its stored cost
    assert stored(path)[0][2].startswith("scrypt$1024$")  # re-hashed at the current one
    assert accounts.check("a", PASSWORD, T0) is not None and stored(path)[0][2] != old


def test_lockout_sequence(accounts: Accounts) -> None:
    accounts.add("carol", "operator", PASSWORD)
    now = T0
    for _ in range(acc.FAILURES_BEFORE_LOCK - 1):
        assert accounts.check("carol", "wrong password!", now) is None
        assert accounts.locked_until("carol", now) is None
    # The 5th failure locks for 1 s, then each further failure doubles it.
    for lock_s in (1.0, 2.0, 4.0, 8.0):
        assert accounts.check("carol", "wrong password!", now) is None
        assert accounts.locked_until("carol", now) == now + lock_s
        # Within the lockout even the right password is refused, unchecked; nothing extends it.
        with pytest.raises(AccountLocked) as locked:
            accounts.check("carol", PASSWORD, now + lock_s - 0.001)
        assert locked.value.locked_until == now + lock_s and locked.value.name == "carol"
        with pytest.raises(AccountLocked):
            accounts.check("CAROL", PASSWORD, now)  # nor is the lock another name's in caps
        now += lock_s
    # Once the lockout is over, the right password succeeds and resets the count.
    assert accounts.check("carol", PASSWORD, now) is not None
    for _ in range(acc.FAILURES_BEFORE_LOCK - 1):
        assert accounts.check("carol", "wrong password!", now) is None
    assert accounts.locked_until("carol", now) is None
    assert accounts.check("carol", "wrong password!", now) is None
    assert accounts.locked_until("carol", now) == now + 1.0


def test_lockout_caps_at_15_minutes_and_survives_a_restart(path: Place, cheap: None) -> None:
    accounts = Accounts(Registry(path))
    accounts.add("dave", "operator", PASSWORD)
    now = T0
    for _ in range(acc.FAILURES_BEFORE_LOCK + 12):  # 2**12 s would be over an hour
        assert accounts.check("dave", "wrong password!", now) is None
        now = accounts.locked_until("dave", now) or now
    assert accounts.locked_until("dave", now - 1) == now
    accounts.check("dave", "wrong password!", now)
    assert accounts.locked_until("dave", now) == now + 15 * 60
    accounts.close()
    again = Accounts(Registry(path))  # a restart: the counter is in the database
    with pytest.raises(AccountLocked):
        again.check("dave", PASSWORD, now)


def test_unknown_names_lock_out_alike(accounts: Accounts) -> None:
    for _ in range(acc.FAILURES_BEFORE_LOCK):
        assert accounts.check("nobody", PASSWORD, T0) is None
    with pytest.raises(AccountLocked):
        accounts.check("nobody", PASSWORD, T0)


def test_unknown_name_costs_the_same_scrypt_time(path: Place) -> None:
    accounts = Accounts(Registry(path))  # the default cost: the claim is about the real one
    accounts.add("erin", "operator", PASSWORD)

    def cost(name: str, now: float) -> float:
        start = time.perf_counter()
        assert accounts.check(name, "wrong password!", now) is None
        return time.perf_counter() - start

    # Fewer failures than lock a name; the quickest of three each, against a shared machine.
    known = min(cost("erin", T0 + i) for i in range(3))
    unknown = min(cost(f"ghost{i}", T0) for i in range(3))
    assert known > 0.01  # scrypt at 32 MiB is tens of ms at least: it did run
    assert unknown > known / 3 and unknown < known * 3


def test_second_instance_sees_changes(path: Place, cheap: None) -> None:
    first, second = Accounts(Registry(path)), Accounts(Registry(path))
    first.add("frank", "operator", PASSWORD)
    assert second.check("frank", PASSWORD, T0) == first.get("frank")
    second.set_role("frank", "administrator")
    second.set_password("frank", OTHER)
    assert first.check("frank", OTHER, T0) == Account("frank", Role.ADMINISTRATOR,
                                                      second.all()[0].created_at)
    first.remove("frank")
    assert second.get("frank") is None and second.check("frank", OTHER, T0) is None


def test_unreadable_stored_hash_is_an_error(accounts: Accounts) -> None:
    accounts.add("gina", "operator", PASSWORD)
    sql(accounts.place, "UPDATE accounts SET password_hash = 'scrypt$99999999999$8$1$AA==$AA=='")
    with pytest.raises(RegistryError, match="stored hash unreadable"):
        accounts.check("gina", PASSWORD, T0)
