"""The GSM modem's numbered answers: 3GPP TS 27.005 +CMS ERROR and TS 27.007 +CME ERROR codes
and +CREG registration states, each with its meaning and whether trying again can help."""
from __future__ import annotations

# TS 27.005 §3.2.5 +CMS ERROR codes: meaning, and whether trying again can help. 0-127 are
# TS 24.011 RP causes, 128-255 TS 23.040 TP-FCS values, 300-500 the modem's own.
CMS_ERRORS: dict[int, tuple[str, bool]] = {
    1: ("unassigned (unallocated) number", False),
    8: ("operator determined barring", False),
    10: ("call barred", False),
    21: ("short message transfer rejected", False),
    27: ("destination out of service", True),
    28: ("unidentified subscriber", False),
    29: ("facility rejected", False),
    30: ("unknown subscriber", False),
    38: ("network out of order", True),
    41: ("temporary failure", True),
    42: ("congestion", True),
    47: ("resources unavailable, unspecified", True),
    50: ("requested facility not subscribed", False),
    69: ("requested facility not implemented", False),
    81: ("invalid short message transfer reference value", True),
    95: ("invalid message, unspecified", False),
    96: ("invalid mandatory information", False),
    97: ("message type non-existent or not implemented", False),
    98: ("message not compatible with short message protocol state", True),
    99: ("information element non-existent or not implemented", False),
    111: ("protocol error, unspecified", True),
    127: ("interworking, unspecified", True),
    128: ("telematic interworking not supported", False),
    143: ("unspecified TP-PID error", False),
    144: ("data coding scheme (alphabet) not supported", False),
    159: ("unspecified TP-DCS error", False),
    176: ("TPDU not supported", False),
    192: ("SC busy", True),
    193: ("no SC subscription", False),
    194: ("SC system failure", True),
    195: ("invalid SME address", False),
    196: ("destination SME barred", False),
    197: ("SM rejected, duplicate SM", False),
    255: ("unspecified error cause", True),
    300: ("ME failure", True),
    301: ("SMS service of ME reserved", True),
    302: ("operation not allowed", False),
    303: ("operation not supported", False),
    304: ("invalid PDU mode parameter", False),
    305: ("invalid text mode parameter", False),
    310: ("(U)SIM not inserted", False),
    311: ("(U)SIM PIN required", False),
    312: ("PH-(U)SIM PIN required", False),
    313: ("(U)SIM failure", False),
    314: ("(U)SIM busy", True),
    315: ("(U)SIM wrong", False),
    316: ("(U)SIM PUK required", False),
    317: ("(U)SIM PIN2 required", False),
    318: ("(U)SIM PUK2 required", False),
    320: ("memory failure", True),
    321: ("invalid memory index", False),
    322: ("memory full", True),
    330: ("SMSC address unknown", False),
    331: ("no network service", True),
    332: ("network timeout", True),
    340: ("no +CNMA acknowledgement expected", True),
    500: ("unknown error", True),
}
# TS 27.007 §9.2 +CME ERROR codes the commands used here can give.
CME_ERRORS: dict[int, tuple[str, bool]] = {
    0: ("phone failure", True),
    3: ("operation not allowed", False),
    4: ("operation not supported", False),
    10: ("SIM not inserted", False),
    11: ("SIM PIN required", False),
    12: ("SIM PUK required", False),
    13: ("SIM failure", False),
    14: ("SIM busy", True),
    15: ("SIM wrong", False),
    26: ("dial string too long", False),
    27: ("invalid characters in dial string", False),
    30: ("no network service", True),
    31: ("network timeout", True),
    32: ("network not allowed, emergency calls only", False),
    100: ("unknown", True),
}
# +CREG <stat>: meaning, and for the unregistered ones whether waiting can help.
CREG_STATES: dict[int, tuple[str, bool]] = {
    0: ("not registered, not searching for an operator", True),
    1: ("registered, home network", True),
    2: ("not registered, searching for an operator", True),
    3: ("registration denied", False),
    4: ("registration state unknown", True),
    5: ("registered, roaming", True),
}
REGISTERED = frozenset({1, 5})


def explain(family: str, code: int) -> tuple[str, bool]:
    """Meaning of a +CMS/+CME ERROR code and whether retrying can help (unknown: it might)."""
    table = CMS_ERRORS if family == "+CMS ERROR" else CME_ERRORS
    if code in table:
        return table[code]
    if family == "+CMS ERROR":
        if code < 128:
            return ("network (RP) cause", True)
        if code < 256:
            return ("SMS centre (TP-FCS) failure", True)
        if code >= 512:
            return ("manufacturer specific error", True)
    return ("unknown error code", True)
