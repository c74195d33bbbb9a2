"""kite_lab: build, inspect and ship LLM agents from a notebook, a script or a service.

    from kite_lab import Kite
    ai = Kite()
    print(ai.complete("What is the capital of France? Answer in one sentence."))

In JupyterLab: ``%load_ext kite_lab``, then ``%%kite`` cells.

Importing kite_lab is cheap: heavy packages (SDKs, faiss, fastembed, pandas, ...) load on
first use of the component that needs them.
"""

from __future__ import annotations

from typing import Any

from kite_lab.core.errors import (
    AgentError,
    AgentLimitReached,
    AuthenticationError,
    BadRequestError,
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
    MissingAPIKey,
    NoProviderConfigured,
    OutputParseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimitError,
    RateLimitExceeded,
    SafetyError,
    ServerError,
    StoreError,
    StoreUnavailable,
    ToolError,
    UnknownProvider,
)
from kite_lab.core.types import Completion, Message, RunResult, ToolCall, ToolSpec, Usage
from kite_lab.kite import Kite

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "AgentLimitReached",
    "AuthenticationError",
    "BadRequestError",
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
    "MalformedResponse",
    "Message",
    "MissingAPIKey",
    "NoProviderConfigured",
    "OutputParseError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "QuotaExceeded",
    "RateLimitError",
    "RateLimitExceeded",
    "RunResult",
    "SafetyError",
    "ServerError",
    "StoreError",
    "StoreUnavailable",
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
