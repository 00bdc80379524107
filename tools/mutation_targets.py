"""What tools/mutate.py mutates: each module the safety claims rest on, with the fast tests
that are meant to catch its mutants (docs/testing.md has the scores)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One module under mutation and the fast tests that are meant to catch its mutants."""

    path: str                 # in the repository, e.g. "host/receiver.py"
    tests: tuple[str, ...]    # test files or node ids, relative to the repository
    # Tests of those files left out: slow ones whose every assertion is made faster elsewhere.
    deselect: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.removesuffix(".py")

    @property
    def firmware(self) -> bool:
        return self.path.startswith("firmware/")


# The firmware tests that compare with MicroPython (the `mp` fixture) are left out of firmware
# targets: there the MicroPython side runs the unmutated module and would "kill" every mutant
# by disagreeing, which says nothing about the tests. The twins marked `micropython` are left
# out everywhere for the same reason (they run the firmware folder, never a mutant).
#
# Two hours of tracking on the virtual clock: 6 to 8 s each, and every dispatcher or outbox
# mutant would run them; tests/test_mutants_dispatcher.py checks the same on a short window.
_TWO_HOURS = ("tests/test_dispatch.py::test_tracking_every_10_s_for_2_h_then_stops",
              "tests/test_dispatch_policy.py::test_a_second_press_gets_its_own_two_hours")
_FW_BUTTON = ("tests/firmware/test_button.py", "tests/firmware/test_power.py")
TARGETS: tuple[Target, ...] = (
    Target("firmware/frame.py", ("tests/firmware/test_frame.py",
                                 "tests/firmware/test_receiver_vectors.py",
                                 "tests/firmware/test_evqueue.py",
                                 "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/counters.py", (*_FW_BUTTON,
                                    "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/store.py", ("tests/firmware/test_store.py", "tests/firmware/test_config.py",
                                 *_FW_BUTTON,
                                 "tests/firmware/test_bonds.py", "tests/firmware/test_fatal.py",
                                 "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/evqueue.py", ("tests/firmware/test_evqueue.py", *_FW_BUTTON,
                                   "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/gesture.py", (*_FW_BUTTON, "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/debounce.py", (*_FW_BUTTON, "tests/firmware/test_mutants_firmware.py")),
    Target("firmware/burst.py", ("tests/firmware/test_burst.py",
                                 "tests/firmware/test_mutants_firmware.py")),
    Target("host/receiver.py", ("tests/test_receiver.py", "tests/test_receiver_rules.py",
                                "tests/test_sequence.py", "tests/test_mutants_host.py")),
    Target("host/sequence.py", ("tests/test_sequence.py", "tests/test_receiver.py",
                                "tests/test_receiver_rules.py", "tests/test_mutants_host.py")),
    Target("host/dispatcher.py", ("tests/test_dispatch.py", "tests/test_dispatch_policy.py",
                                  "tests/test_silent_sleeping_button.py",
                                  "tests/test_mutants_dispatcher.py"), _TWO_HOURS),
    Target("host/outbox.py", ("tests/test_dispatch.py", "tests/test_dispatch_policy.py",
                              "tests/hostile/test_hostile_files.py",
                              "tests/test_mutants_host.py",
                              "tests/test_mutants_dispatcher.py"), _TWO_HOURS),
    Target("centre/core.py", ("tests/test_dispatch.py", "tests/test_silent_sleeping_button.py",
                              "tests/hostile/test_hostile_keys.py",
                              "tests/hostile/test_hostile_errors.py",
                              "tests/test_mutants_centre.py")),
    Target("centre/registry.py", ("tests/test_dispatch.py", "tests/test_silent_sleeping_button.py",
                                  "tests/hostile/test_hostile_errors.py",
                                  "tests/test_mutants_centre.py")),
    Target("wire/protocol.py", ("tests/test_protocol.py", "tests/test_receiver.py",
                                "tests/test_receiver_rules.py",
                                "tests/test_independent_vectors.py", "tests/test_gatt_uuids.py",
                                "tests/test_mutants_wire.py")),
    Target("wire/dc09.py", ("tests/test_dc09.py", "tests/test_dc09_window.py",
                            "tests/test_mutants_wire.py")),
    Target("wire/aml.py", ("tests/test_aml.py", "tests/test_aml_independent.py",
                           "tests/test_sms.py", "tests/test_mutants_wire.py")),
    Target("wire/msa1.py", ("tests/test_sms.py", "tests/test_mutants_wire.py")),
    # Issue 14: the proximity rules, their distances, and the host-centre contract.
    Target("centre/proximity.py", ("tests/test_proximity_rules.py",
                                   "tests/test_proximity_centre.py",
                                   "tests/test_proximity_mutants.py")),
    Target("centre/geo.py", ("tests/test_proximity_rules.py",
                             "tests/test_proximity_mutants.py")),
    Target("wire/proximity.py", ("tests/test_wire_proximity.py",
                                 "tests/test_proximity_centre.py")),
    # Issue 15: who may see a case file, what is recorded of it, and the evidence.
    Target("centre/records.py", ("tests/test_dispatch.py", "tests/test_silent_sleeping_button.py",
                                 "tests/test_mutants_centre.py", "tests/test_timeline.py",
                                 "tests/test_operator_page.py",
                                 "tests/test_mutants_evidence.py")),
    Target("centre/accounts.py", ("tests/test_accounts.py", "tests/test_operator_login.py",
                                  "tests/test_mutants_workplace.py")),
    Target("centre/sessions.py", ("tests/test_operator_login.py",
                                  "tests/test_mutants_workplace.py")),
    Target("centre/authweb.py", ("tests/test_operator_login.py",
                                 "tests/test_operator_page.py",
                                 "tests/test_mutants_workplace.py")),
    Target("centre/audit.py", ("tests/test_audit.py", "tests/test_retention.py",
                               "tests/test_mutants_evidence.py")),
    Target("centre/evidence_check.py", ("tests/test_evidence.py",
                                        "tests/test_mutants_evidence.py")),
)
