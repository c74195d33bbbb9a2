"""kite_lab: build, inspect and ship LLM agents from a notebook, a script or a service.

    from kite_lab import Kite
    ai = Kite()
    print(ai.complete("What is the capital of France? Answer in one sentence."))

In JupyterLab: ``%load_ext kite_lab``, then ``%%kite`` cells.

Importing kite_lab is cheap: heavy packages (SDKs, faiss, fastembed, pandas, ...) load on
first use of the component that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kite_lab._version import __version__
from kite_lab.core.errors import (
    AgentError,
    AgentLimitReached,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    CallLogError,
    CapabilityError,
    CassetteError,
    CassetteMiss,
    CircuitBreakerError,
    ConfigError,
    EnvFileError,
    ExportError,
    IdempotencyConflict,
    IdempotencyError,
    IdempotencyInProgress,
    IdempotencySerializationError,
    IndexCorrupted,
    InvalidInput,
    InvalidParameter,
    KillSwitchError,
    KiteError,
    LocalModelUnavailable,
    MalformedResponse,
    MCPServerError,
    MissingAPIKey,
    NoProviderConfigured,
    OutputParseError,
    OutputValidationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimitError,
    RateLimitExceeded,
    SafetyError,
    ServerError,
    SettingsError,
    StoreError,
    StoreUnavailable,
    ToolArgumentsError,
    ToolError,
    UnknownProvider,
)
from kite_lab.kite import Kite

if TYPE_CHECKING:
    from kite_lab.core.types import Completion, Message, RunResult, ToolCall, ToolSpec, Usage

# The data types load on first use: their dataclasses cost `import kite_lab` ~15 ms.
_LAZY_TYPES = ("Completion", "Message", "RunResult", "ToolCall", "ToolSpec", "Usage")


__all__ = [
    "AgentError",
    "AgentLimitReached",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "CallLogError",
    "CapabilityError",
    "CassetteError",
    "CassetteMiss",
    "CircuitBreakerError",
    "Completion",
    "ConfigError",
    "EnvFileError",
    "ExportError",
    "IdempotencyConflict",
    "IdempotencyError",
    "IdempotencyInProgress",
    "IdempotencySerializationError",
    "IndexCorrupted",
    "InvalidInput",
    "InvalidParameter",
    "KillSwitchError",
    "Kite",
    "KiteError",
    "LocalModelUnavailable",
    "MCPServerError",
    "MalformedResponse",
    "Message",
    "MissingAPIKey",
    "NoProviderConfigured",
    "OutputParseError",
    "OutputValidationError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "QuotaExceeded",
    "RateLimitError",
    "RateLimitExceeded",
    "RunResult",
    "SafetyError",
    "ServerError",
    "SettingsError",
    "StoreError",
    "StoreUnavailable",
    "ToolArgumentsError",
    "ToolCall",
    "ToolError",
    "ToolSpec",
    "UnknownProvider",
    "Usage",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kite_lab``: register the %kite / %%kite magics on this kernel."""
    from kite_lab.notebook.extension import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from kite_lab.notebook.extension import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    if name in _LAZY_TYPES:
        from kite_lab.core import types

        value = getattr(types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kite_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
