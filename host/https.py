"""HTTPS JSON channel to a dispatch API, shaped like public panic-dispatch APIs: create an
alarm with its location, append locations to it, and learn when the centre resolved it.
TLS is always verified (the system's CAs, or a configured CA file); the host authenticates
with a bearer token, and the button's own frame rides along for end-to-end verification.

    POST {base}/alarms                      create (ALARM, TEST): -> {"incident": id, "status"}
    POST {base}/alarms/{incident}/locations  append (LOCATION):    -> {"status": "open"|"resolved"}
    POST {base}/events                      LOW_BATTERY, HEARTBEAT, BOOT

Every body carries the message key; the centre answers a repeated key with the first answer.
"""
from __future__ import annotations

import ssl
import time
from typing import Any

import aiohttp

from msa.wire.api import body
from msa.wire.message import INCIDENT_KINDS, Message, MessageKind

from .dispatch import Receipt
from .errors import ChannelError

# Statuses after which trying the same request again cannot help.
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 413, 422})


class HttpsChannel:
    """One dispatch API. `base_url` like https://centre.example:8443/v1."""

    def __init__(self, *, base_url: str, token: str, deadline_s: float = 3.0,
                 ca_file: str | None = None, name: str = "https") -> None:
        if not base_url.startswith("https://"):
            raise ChannelError(name, f"{base_url!r} is not an https:// URL", retryable=False)
        self.name = name
        self.deadline_s = deadline_s
        self._base = base_url.rstrip("/")
        self._token = token
        self._ssl = ssl.create_default_context(cafile=ca_file)  # verifies host and chain
        self._session: aiohttp.ClientSession | None = None
        self._incidents: dict[str, str] = {}  # message incident key -> the centre's id

    def accepts(self, kind: MessageKind) -> bool:
        return True

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=8),
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=aiohttp.ClientTimeout(total=self.deadline_s))
        return self._session

    async def send(self, message: Message) -> Receipt:
        if message.kind in INCIDENT_KINDS:
            path = "/alarms"
        elif message.kind is MessageKind.LOCATION:
            # The centre's own id once known; its key works too (the centre maps it).
            path = f"/alarms/{self._incidents.get(message.incident, message.incident)}/locations"
        else:
            path = "/events"
        answer = await self._post(path, body(message))
        reference = str(answer.get("incident", ""))
        if reference and message.incident:
            self._incidents[message.incident] = reference
        return Receipt(channel=self.name, key=message.key, acked_at=time.time(),
                       reference=reference, closed=answer.get("status") == "resolved")

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._client().post(self._base + path, json=payload) as resp:
                if resp.status in _FINAL_STATUSES:
                    text = (await resp.text())[:200]
                    raise ChannelError(self.name, f"refused ({resp.status}): {text}",
                                       retryable=False)
                if resp.status >= 300:
                    raise ChannelError(self.name, f"HTTP {resp.status}")
                answer = await resp.json()
        except aiohttp.ClientConnectorCertificateError as exc:
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
