"""The kill switch's state in Redis: one hash at ``{KITE_REDIS_PREFIX}killswitch``.

Every replica using the same Redis and prefix sees an activation on its next call. The
key has no TTL on purpose: a kill switch that silently expires is not one. What happens
while Redis is unreachable is the switch's policy (``kill_switch``), not the store's.
"""

from __future__ import annotations

from kite_lab.backends.redis_client import aclose_redis_clients, key_join, redis_client
from kite_lab.safety.kill_switch_store import INACTIVE, KillSwitchStore, SwitchState

__all__ = ["RedisKillSwitchStore"]


class RedisKillSwitchStore(KillSwitchStore):
    backend = "redis"

    def __init__(self, url: str, prefix: str = "kite:") -> None:
        self.url = url
        self.key = key_join(prefix, "killswitch")

    def __repr__(self) -> str:
        return f"RedisKillSwitchStore(key={self.key!r})"

    async def read(self) -> SwitchState:
        data = await redis_client(self.url).hgetall(self.key)
        if not data:
            return INACTIVE
        reason, at = data.get("reason"), data.get("activated_at")  # str: a decoding client
        return SwitchState(True, str(reason) if reason else None, float(at) if at else None)

    async def activate(self, reason: str, at: float) -> None:
        await redis_client(self.url).hset(
            self.key, mapping={"reason": reason, "activated_at": repr(at)}
        )

    async def deactivate(self) -> None:
        await redis_client(self.url).delete(self.key)

    async def aclose(self) -> None:
        await aclose_redis_clients()
