"""An HTTP sender for webhook requests: a POST, a timeout on every phase, no redirects (a
receiver cannot send the registry's request on to an address it would have refused)."""

from __future__ import annotations

import httpx

from dockyard.service.events import DeliveryFailed


class HttpSender:
    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the URL is what was checked
            headers={"User-Agent": "dockyard-webhooks"},
        )

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            response = await self._client.post(url, content=body, headers=headers)
            await response.aclose()
        except httpx.HTTPError as e:
            raise DeliveryFailed(f"{type(e).__name__}: {e}") from None
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()
