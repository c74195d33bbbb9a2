"""The contract of the stores that keep the kill switch: this process (memory) or Redis.

The switch is one record: active or not, with the reason and the activation time.
``kill_switch_memory`` holds it in this process; ``kill_switch_redis`` holds it at
``{KITE_REDIS_PREFIX}killswitch`` for every replica. Both pass the same contract test
(``tests/safety/test_kill_switch_contract.py``):

- ``read`` returns what the last ``activate`` / ``deactivate`` through *any* handle on
  the same store wrote (another process, for Redis);
- ``activate`` overwrites reason and time (activating twice keeps the latest);
- nothing expires: a kill switch that silently expires is not one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["INACTIVE", "KillSwitchStore", "SwitchState"]


@dataclass(frozen=True, slots=True)
class SwitchState:
    active: bool
    reason: str | None = None
    #: epoch seconds of the activation; None while inactive
    activated_at: float | None = None


INACTIVE = SwitchState(False)


class KillSwitchStore(ABC):
    """The contract every kill-switch store implements. All methods are coroutines."""

    backend: str = "?"
    #: True when the coroutines never suspend (the switch then calls ``read_now``)
    inline: bool = False

    @abstractmethod
    async def read(self) -> SwitchState: ...

    @abstractmethod
    async def activate(self, reason: str, at: float) -> None: ...

    @abstractmethod
    async def deactivate(self) -> None: ...

    def read_now(self) -> SwitchState:
        """The state without awaiting; only stores with ``inline = True`` have one."""
        raise NotImplementedError(f"{type(self).__name__} must be read with await read()")

    async def aclose(self) -> None:
        """Close this loop's connections, if any (they reopen on next use)."""
        return None
