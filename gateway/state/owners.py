"""Who owns a stored response (Responses API): the provider that holds it, its model and the team that made it.

Follow-ups (`previous_response_id`) and GET/DELETE /v1/responses/{id} go only to that provider and only
for that team. Kept in Redis (`gw:resp:{id}`, a JSON value that expires with the provider's own
retention, 30 days by default) so every instance can route a follow-up, and in a bounded in-process map
as well, which answers while Redis is unreachable and is all there is without Redis.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from gateway.state.client import STORE_ERRORS
from gateway.state.outage import Outage

TTL_SECONDS = 30 * 86400
LOCAL_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Owner:
    provider: str
    model: str
    team: str


class ResponseOwners:
    def __init__(
        self, client: aioredis.Redis | None = None, outage: Outage | None = None, *, ttl_seconds: int = TTL_SECONDS
    ) -> None:
        self._client = client
        self._outage = outage
        self._ttl = ttl_seconds
        self._local: OrderedDict[str, Owner] = OrderedDict()

    def _shared(self) -> aioredis.Redis | None:
        if self._client is None or (self._outage is not None and self._outage.down):
            return None
        return self._client

    def _failed(self, exc: BaseException) -> None:
        if self._outage is not None:
            self._outage.mark_down(exc)

    async def remember(self, response_id: str, owner: Owner) -> None:
        self._local[response_id] = owner
        self._local.move_to_end(response_id)
        while len(self._local) > LOCAL_MAX:
            self._local.popitem(last=False)
        client = self._shared()
        if client is not None:
            try:
                await client.set(f"gw:resp:{response_id}", json.dumps(asdict(owner)), ex=self._ttl)
            except STORE_ERRORS as exc:
                self._failed(exc)

    async def get(self, response_id: str) -> Owner | None:
        client = self._shared()
        if client is not None:
            try:
                raw = await client.get(f"gw:resp:{response_id}")
            except STORE_ERRORS as exc:
                self._failed(exc)
            else:
                found = _owner(raw)
                if found is not None:
                    return found
        return self._local.get(response_id)

    async def forget(self, response_id: str) -> None:
        self._local.pop(response_id, None)
        client = self._shared()
        if client is not None:
            try:
                await client.delete(f"gw:resp:{response_id}")
            except STORE_ERRORS as exc:
                self._failed(exc)


def _owner(raw: bytes | str | None) -> Owner | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return Owner(str(value["provider"]), str(value["model"]), str(value["team"]))
    except (ValueError, KeyError, TypeError):
        return None  # not ours to trust: as if unknown
