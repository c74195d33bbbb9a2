"""Plumbing shared by the stores of ``safety/`` and ``memory/``: clocks and Redis clients.

Why a package of its own: both layers keep state in memory or in Redis behind one
contract, and both need the same injectable clock and the same loop-bound Redis client.
Living here (below both, above ``core``) keeps ``memory`` from importing ``safety``.
"""

__all__: list[str] = []
