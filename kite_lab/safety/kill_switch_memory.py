"""The kill switch's state in this process: one record behind a lock.

Every ``KillSwitch`` given the same store sees the same switch (every thread and event
loop of the process); nothing awaits, so the switch reads it inline on every call.
"""

from __future__ import annotations

import threading

from kite_lab.safety.kill_switch_store import INACTIVE, KillSwitchStore, SwitchState

__all__ = ["MemoryKillSwitchStore"]


class MemoryKillSwitchStore(KillSwitchStore):
    backend = "memory"
    inline = True

    def __init__(self) -> None:
        self._state = INACTIVE
        self._lock = threading.Lock()

    def read_now(self) -> SwitchState:
        return self._state  # one attribute read: frozen states are swapped whole

    async def read(self) -> SwitchState:
        return self._state

    async def activate(self, reason: str, at: float) -> None:
        with self._lock:
            self._state = SwitchState(True, reason, at)

    async def deactivate(self) -> None:
        with self._lock:
            self._state = INACTIVE
