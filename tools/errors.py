"""The tools' exception tree: each error says what went wrong and what to do about it."""
from __future__ import annotations


class ToolError(Exception):
    """Base of every error the msa command line reports; `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}{'; ' + hint if hint else ''}")


class UnknownBoard(ToolError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown board {name!r}", "choose one of " + ", ".join(known))


class CompileError(ToolError):
    def __init__(self, path: str, output: str) -> None:
        self.path = path
        self.output = output
        super().__init__(f"mpy-cross could not compile {path}: {output.strip()}",
                         "fix the firmware source; it must be MicroPython")


class NoDevice(ToolError):
    """Nothing could be opened at the port (mpremote's "failed to access")."""

    def __init__(self, port: str, detail: str) -> None:
        self.port = port
        self.detail = detail
        super().__init__(f"no device on {port} (mpremote could not open it)",
                         "plug the button in, check the port (a /dev/tty* device or"
                         " socket://HOST:PORT) and that no other program has it open")


class PortDenied(ToolError):
    """The serial device is there, but this user may not open it (Linux: not in its group)."""

    def __init__(self, port: str, group: str) -> None:
        self.port = port
        self.group = group
        super().__init__(f"no permission to open {port} (it belongs to group {group})",
                         f"add your user to that group (sudo usermod -aG {group} $USER), log in"
                         " again, and retry")


class NotMicroPython(ToolError):
    """Something answered on the port, but not with a MicroPython REPL."""

    def __init__(self, port: str, detail: str) -> None:
        self.port = port
        self.detail = detail
        super().__init__(f"no MicroPython device on {port}; {detail}",
                         "check the port, or install MicroPython on the board first"
                         " (docs/boards.md)")


class DeviceFailed(ToolError):
    """mpremote reached the device but a step on it failed; carries mpremote's output."""

    def __init__(self, port: str, step: str, output: str) -> None:
        self.port = port
        self.step = step
        self.output = output
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        super().__init__(f"the device on {port} failed to {step}: {last}",
                         "check the cable and try again; `mpremote connect PORT` shows its REPL")


class WrongBoard(ToolError):
    """The board module does not fit the MicroPython port the device runs."""

    def __init__(self, port: str, board: str, expected: str, found: str) -> None:
        self.port = port
        self.board = board
        self.expected = expected
        self.found = found
        super().__init__(f"board {board!r} needs MicroPython's {expected} port, but the device on"
                         f" {port} runs {found}", "choose the --board that matches the hardware")


class MpyMismatch(ToolError):
    """The device's MicroPython cannot load the .mpy files this mpy-cross writes."""

    def __init__(self, port: str, device_version: int, mpy_version: int) -> None:
        self.port = port
        self.device_version = device_version
        self.mpy_version = mpy_version
        super().__init__(f"the device on {port} loads .mpy version {device_version}, but"
                         f" mpy-cross writes version {mpy_version}",
                         "update MicroPython on the device to the release msa pins")


class MicroPythonTooOld(ToolError):
    """The device's MicroPython is older than a feature of the board module needs."""

    def __init__(self, port: str, board: str, found: str, needed: str, reason: str) -> None:
        self.port = port
        self.board = board
        self.found = found
        self.needed = needed
        self.reason = reason
        super().__init__(f"the device on {port} runs MicroPython {found}; board {board!r}"
                         f" needs MicroPython {needed} or later ({reason})",
                         f"install MicroPython {needed} or later on the device, then flash"
                         " again")


class FlashVerifyFailed(ToolError):
    """Files read back from the device (by SHA-256, on the device) differ from those sent."""

    def __init__(self, port: str, files: list[str]) -> None:
        self.port = port
        self.files = files
        super().__init__(f"files on the device on {port} differ from those sent: "
                         + ", ".join(files), "flash again; if it persists, the flash is failing")


class BootFailed(ToolError):
    """After the reset the firmware did not load, or reported another version."""

    def __init__(self, port: str, expected: str, found: str) -> None:
        self.port = port
        self.expected = expected
        self.found = found
        super().__init__(f"the firmware on {port} did not come up as version {expected}"
                         f" (read back: {found})", "flash again with msa flash; if it fails the"
                         " same way, the device's MicroPython build lacks what the firmware"
                         " needs: install the one docs/boards.md names for the board")


class NoFirmware(ToolError):
    """The device runs MicroPython but not the msa firmware."""

    def __init__(self, port: str) -> None:
        self.port = port
        super().__init__(f"no msa firmware on the device on {port}",
                         "flash it first: msa flash --port PORT --board NAME")


class AlreadyProvisioned(ToolError):
    """The button already holds a configuration (button_id -1: one that does not validate)."""

    def __init__(self, port: str, button_id: int) -> None:
        self.port = port
        self.button_id = button_id
        held = f"button {button_id:08x}" if button_id > 0 else "an unreadable configuration"
        super().__init__(f"the button on {port} is already provisioned ({held})",
                         "retire it with msa wipe first, or pass --force to replace it")


class Unprovisioned(ToolError):
    """The button holds no configuration where one was expected."""

    def __init__(self, port: str) -> None:
        self.port = port
        super().__init__(f"the button on {port} is not provisioned",
                         "check that this is the right button; msa provision sets one up")


class WrongButton(ToolError):
    """The device holds another button id than the one the technician named."""

    def __init__(self, port: str, expected: int, found: int) -> None:
        self.port = port
        self.expected = expected
        self.found = found
        held = f"button {found:08x}" if found > 0 else "a button with an unreadable configuration"
        super().__init__(f"the device on {port} is {held}, not button {expected:08x}",
                         "check that this is the right button")


class KeyMismatch(ToolError):
    """The configuration read back from the device differs from the one written."""

    def __init__(self, port: str, button_id: int) -> None:
        self.port = port
        self.button_id = button_id
        super().__init__(f"the configuration read back from button {button_id:08x} on {port}"
                         " differs from the one written",
                         "provision again with --force; if it persists, the flash is failing")


class CaseUnknown(ToolError):
    """The case the button is for is not in the centre's registry."""

    def __init__(self, registry: str, case_ref: str) -> None:
        self.registry = registry
        self.case_ref = case_ref
        super().__init__(f"no case {case_ref!r} in the registry {registry}",
                         "add the case to the registry first, then provision")


class ButtonIdRetired(ToolError):
    """The requested button id belonged to a retired button: ids are never used twice, since
    the centre recognises repeated messages by keys made from the id."""

    def __init__(self, registry: str, button_id: int) -> None:
        self.registry = registry
        self.button_id = button_id
        super().__init__(f"button id {button_id:08x} was retired in the registry {registry};"
                         " a new life needs a new id (message keys are made from it, and the"
                         " centre would take a new alarm for a repeat of an old one)",
                         "leave --button-id out for a random, never-used one")


class ButtonIdTaken(ToolError):
    """The requested button id is already active in the registry."""

    def __init__(self, registry: str, button_id: int) -> None:
        self.registry = registry
        self.button_id = button_id
        super().__init__(f"button id {button_id:08x} is already active in the registry"
                         f" {registry}", "choose another --button-id, or leave it out for a"
                         " random one; --force re-registers it")


class WipeIncomplete(ToolError):
    """Records still read back from the device after it was wiped."""

    def __init__(self, port: str, left: list[str]) -> None:
        self.port = port
        self.left = left
        super().__init__(f"records still on the device on {port} after the wipe: "
                         + ", ".join(left), "run msa wipe again; if it persists, the flash is"
                         " failing and the button must be destroyed")


class MpremoteMissing(ToolError):
    """mpremote is not installed next to this Python."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"mpremote not found at {path}",
                         "install msa with its dependencies (python3 bootstrap.py demo does)")


# --- the BLE side (msa bond, status, test-alarm, monitor, retire) ---

class NoAdapter(ToolError):
    """The host's Bluetooth stack could not be used (no adapter, adapter off, no BlueZ)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"no Bluetooth adapter: {detail}",
                         "plug in or switch on the host's Bluetooth adapter; on Linux BlueZ must"
                         " be running (systemctl status bluetooth)")


class ButtonOutOfRange(ToolError):
    """No advert from the button's address within the scan time."""

    def __init__(self, address: str, timeout_s: float) -> None:
        self.address = address
        self.timeout_s = timeout_s
        super().__init__(f"button {address} not heard within {timeout_s:g} s (out of range,"
                         " switched off, not provisioned: an unprovisioned button stays"
                         " silent on the radio, or bonded to another host: a bonded button's"
                         " address is known only to its host)",
                         "bring it next to the host and try again with a longer --timeout;"
                         " if it is still silent, check it over USB and msa provision it; to"
                         " move it to this host, msa provision --force or msa wipe it first")


class LinkFailed(ToolError):
    """The button was heard but a step of the BLE link to it failed."""

    def __init__(self, address: str, step: str, detail: str) -> None:
        self.address = address
        self.step = step
        self.detail = detail
        super().__init__(f"button {address}: {step} failed: {detail}",
                         "bring it next to the host and try again")


class KeyRejected(ToolError):
    """The button ignored a command tagged with the host's key (it holds another key)."""

    def __init__(self, button_id: int, key_file: str) -> None:
        self.button_id = button_id
        self.key_file = key_file
        super().__init__(f"key mismatch: button {button_id:08x} does not accept this host's key"
                         f" ({key_file})", "provision the button again (msa provision"
                         " --key-out) or fix key_file in the host's configuration")


class NotBonded(ToolError):
    """The button answered, but the host holds no bond with it (the link is not encrypted)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(f"this host holds no bond with button {address}",
                         "bond it first: msa bond --config FILE")


class UnknownHostButton(ToolError):
    """--button names a button the host's configuration does not have."""

    def __init__(self, config: str, button_id: int, known: list[int]) -> None:
        self.config = config
        self.button_id = button_id
        self.known = known
        super().__init__(f"{config} has no button {button_id:08x}",
                         "choose one of " + ", ".join(f"{b:08x}" for b in known))


class NotAcknowledged(ToolError):
    """A test alarm was verified by the host but the centre did not acknowledge it in time."""

    def __init__(self, key: str, timeout_s: float, detail: str = "") -> None:
        self.key = key
        self.timeout_s = timeout_s
        self.detail = detail  # why, when every channel failed: their errors
        why = f": every channel failed ({detail})" if detail else f" within {timeout_s:g} s"
        super().__init__(f"the centre did not acknowledge test alarm {key}{why} (it stays in"
                         " the outbox)",
                         "check the channels (msa host check) and the centre, then run"
                         " msa host run, which delivers it")


class RetireIncomplete(ToolError):
    """Some steps of msa retire failed; the others were done."""

    def __init__(self, failed: list[str]) -> None:
        self.failed = failed
        super().__init__("retire incomplete: " + "; ".join(failed),
                         "fix what is named and run msa retire again (repeating the done"
                         " steps is harmless)")
