"""HTTPS JSON channel to a dispatch API, shaped like public panic-dispatch APIs: create an
alarm with its location, append locations to it, and learn when the centre resolved it.
TLS is always verified (the system's CAs, or a configured CA file); the host authenticates
with a bearer token, and the button's own frame rides along for end-to-end verification.

    POST {base}/alarms                      create (ALARM, TEST): -> {"incident": id, "status"}
    POST {base}/alarms/{incident}/locations  append (LOCATION):    -> {"status": "open"|"resolved"}
    POST {base}/alarms/{incident}/calls      append (CALL):        -> {"status": "open"|"resolved"}
    POST {base}/events                      LOW_BATTERY, HEARTBEAT, BOOT

Every body carries the message key; the centre answers a repeated key with the first answer.
So a channel may list several nodes of one centre (issue 17): it tries them staggered within its
one deadline (host/failover.py), and sending a message to two of them is safe.
"""
from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from msa.wire.api import body
from msa.wire.message import INCIDENT_KINDS, Message, MessageKind

from .dispatch import Receipt
from .errors import ChannelError
from .failover import Failover

# Where an incident's updates go, under /alarms/{incident}/.
_UPDATE_PATHS = {MessageKind.LOCATION: "locations", MessageKind.CALL: "calls"}
# Statuses after which trying the same request again cannot help.
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 413, 422})


class Refused(ChannelError):
    """The centre answered with a final refusal (`status`): every node of it would say the same,
    so no other node is tried and the message is not sent on this channel again."""

    def __init__(self, channel: str, status: int, text: str) -> None:
        super().__init__(channel, f"refused ({status}): {text}", retryable=False)
        self.status = status


class HttpsChannel:
    """One dispatch API: `base_url` like https://centre.example:8443/v1, or `base_urls`, 1 to 4
    nodes of the same centre (one registry, one CA, the same host token), preferred first."""

    def __init__(self, *, base_url: str | None = None, base_urls: Sequence[str] = (),
                 token: str, deadline_s: float = 3.0, ca_file: str | None = None,
                 name: str = "https") -> None:
        if (base_url is None) == (not base_urls):
            raise ChannelError(name, "give base_url or base_urls, one of the two",
                               retryable=False)
        bases = [base_url] if base_url is not None else list(base_urls)
        for url in bases:
            if not url.startswith("https://"):
                raise ChannelError(name, f"{url!r} is not an https:// URL", retryable=False)
        self.name = name
        self.deadline_s = deadline_s
        self._nodes = Failover(name, [url.rstrip("/") for url in bases], deadline_s)
        self._token = token
        self._ssl = ssl.create_default_context(cafile=ca_file)  # verifies host and chain
        self._session: aiohttp.ClientSession | None = None
        # Per node: message incident key -> that node's id. Nodes with records of their own
        # number incidents apart, so another node's id could name a stranger's incident there.
        self._incidents: dict[str, dict[str, str]] = {base: {} for base in self._nodes.order}

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The nodes in the order the next message tries them."""
        return self._nodes.order

    def accepts(self, kind: MessageKind) -> bool:
        return True

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            nodes = len(self._nodes.order)
            self._session = aiohttp.ClientSession(  # a hung node holds its own 8 at most
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=8 * nodes,
                                               limit_per_host=8),
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=aiohttp.ClientTimeout(total=self.deadline_s))
        return self._session

    async def send(self, message: Message) -> Receipt:
        _node, receipt = await self._nodes.first(
            lambda base: self._send_to(base, message),
            final=lambda error: isinstance(error, Refused))
        return receipt

    async def _send_to(self, base: str, message: Message) -> Receipt:
        known = self._incidents[base]
        if message.kind in INCIDENT_KINDS:
            path = "/alarms"
        elif message.kind in _UPDATE_PATHS:
            # This node's own id once it gave one; else the key (every node maps it).
            path = (f"/alarms/{known.get(message.incident, message.incident)}"
                    f"/{_UPDATE_PATHS[message.kind]}")
        else:
            path = "/events"
        answer = await self._post(base + path, body(message))
        reference = str(answer.get("incident", ""))
        if reference and message.incident:
            known[message.incident] = reference
        return Receipt(channel=self.name, key=message.key, acked_at=time.time(),
                       reference=reference, closed=answer.get("status") == "resolved",
                       endpoint=base)

    async def _post(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._client().post(url, json=payload) as resp:
                if resp.status in _FINAL_STATUSES:
                    raise Refused(self.name, resp.status, (await resp.text())[:200])
                if resp.status >= 300:
                    raise ChannelError(self.name, f"HTTP {resp.status}")
                answer = await resp.json()
        except aiohttp.ClientConnectorCertificateError as exc:
            # Final for this node only: another node (or this one, mended) may still take it.
            raise ChannelError(self.name, f"TLS certificate not trusted: {exc.certificate_error}",
                               retryable=False) from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ChannelError(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, dict):
            raise ChannelError(self.name, "answer is not a JSON object")
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
