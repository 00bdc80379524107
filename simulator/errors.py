"""The simulator's exception tree."""
from __future__ import annotations


class SimError(Exception):
    """Base of every error the simulator raises."""


class InterpreterError(SimError):
    """The MicroPython side failed or died; carries its output."""

    def __init__(self, what: str, output: str) -> None:
        self.what = what
        self.output = output
        super().__init__(f"MicroPython {what}: {output.strip()}")


class BridgeError(SimError):
    """The bridge to a virtual board failed: no connection, no reply, or the board died."""


class AirError(SimError):
    """The simulated air was misused: an unknown or duplicate address, a bad fault value."""


class CentralError(SimError):
    """A simulated central's connection, pairing or encryption failed; `code` is the HCI or
    SMP error code when the stack gave one."""

    def __init__(self, what: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(what if code is None else f"{what} (0x{code:02X})")


class MeasurementError(SimError):
    """A measurement's premise did not hold (it would have measured something else); `what`
    says which."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


class ScenarioError(SimError):
    """A proximity scenario file cannot be used: `path` is the file, `field` the part at fault
    (e.g. "tags[0].gps.sigma_m"), `detail` what is wrong with it."""

    def __init__(self, path: str, field: str, detail: str) -> None:
        self.path = path
        self.field = field
        self.detail = detail
        super().__init__(f"scenario {path}: {field}: {detail}")


class TagStreamError(SimError):
    """`msa sim tag` could not deliver a report: `sent` reports were accepted before it."""

    def __init__(self, what: str, sent: int) -> None:
        self.what = what
        self.sent = sent
        super().__init__(f"{what} ({sent} report{'' if sent == 1 else 's'} sent before)")


class NodeError(SimError):
    """A centre node of the failover drill (simulator/nodes.py) did not start, or the drill's
    premise failed (no traffic before a kill, no acknowledgement after one); `node` names the
    node ("" for the drill), `detail` says what, with the node's last log lines."""

    def __init__(self, node: str, detail: str) -> None:
        self.node = node
        self.detail = detail
        super().__init__(f"centre node {node}: {detail}" if node else f"failover drill: {detail}")
