"""Settings from the environment and ``.env``, named as in the deployment guide.

Lookup order for every setting (first wins):
  1. ``Kite(config={...})`` and later ``ai.config[key] = value``
  2. real environment variables
  3. the ``.env`` file in the working directory (never overrides 2)
  4. the defaults below

``ai.config`` keys are the variable names in lower case (``llm_provider``, ``redis_url``).
API keys are ``SecretStr``: they print as ``**********`` and reach no log or output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kite_lab.core.errors import ConfigError, EnvFileError, SettingsError

__all__ = ["KiteConfig", "KiteSettings", "SettingsError", "load_settings", "mask_url"]

PositiveInt = Field(gt=0)


class KiteSettings(BaseSettings):
    """Every setting kite_lab reads. Field name == environment variable in lower case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_assignment=True,
        populate_by_name=True,
    )

    # -- LLM provider (guide: "Required Variables") --------------------------------
    llm_provider: str | None = Field(
        None, description="openai | anthropic | groq | ollama | local; unset: first with a key"
    )
    llm_model: str | None = Field(None, description="model name, or provider/model")
    openai_api_key: SecretStr | None = Field(None, description="OpenAI API key")
    anthropic_api_key: SecretStr | None = Field(None, description="Anthropic API key")
    groq_api_key: SecretStr | None = Field(None, description="Groq API key")
    openai_base_url: str | None = Field(None, description="OpenAI-compatible endpoint override")
    anthropic_base_url: str | None = Field(None, description="Anthropic endpoint override")
    groq_base_url: str = Field(
        "https://api.groq.com/openai/v1", description="Groq OpenAI-compatible endpoint"
    )
    ollama_base_url: str = Field(
        "http://localhost:11434/v1", description="Ollama OpenAI-compatible endpoint"
    )
    local_model_path: str | None = Field(
        None, description="GGUF file for LLM_PROVIDER=local; unset: the bundled SmolLM2-135M"
    )
    llm_timeout: float = Field(60.0, gt=0, description="seconds before a provider call times out")
    llm_max_retries: int = Field(
        0, ge=0, description="SDK retries per call; 0 so one logical call is one breaker event"
    )
    openai_http_backend: Literal["httpx", "aiohttp"] = Field(
        "httpx", description="openai SDK transport: httpx | aiohttp (pip install kite-lab[aiohttp])"
    )

    # -- embeddings -------------------------------------------------------------------
    embedding_provider: Literal["fastembed", "openai"] = Field(
        "fastembed", description="fastembed (offline) | openai"
    )
    embedding_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="fastembed model; the default ships offline with kite-lab",
    )
    fastembed_cache_path: str | None = Field(
        None, description="where fastembed looks for other models' files"
    )

    # -- safety (guide: "Optional Variables") ---------------------------------------
    circuit_breaker_threshold: int = Field(
        3,
        gt=0,
        validation_alias=AliasChoices(
            "circuit_breaker_threshold", "circuit_breaker_failure_threshold"
        ),
        description="failures that open the breaker (alias CIRCUIT_BREAKER_FAILURE_THRESHOLD)",
    )
    circuit_breaker_timeout: float = Field(
        60.0,
        gt=0,
        validation_alias=AliasChoices("circuit_breaker_timeout", "circuit_breaker_timeout_seconds"),
        description="seconds open before half-open (alias CIRCUIT_BREAKER_TIMEOUT_SECONDS)",
    )
    idempotency_ttl: int = Field(3600, gt=0, description="seconds a completed result is kept")
    breaker_backend: Literal["memory", "redis"] | None = Field(
        None, description="memory | redis; unset: redis when REDIS_URL is set"
    )
    idempotency_backend: Literal["memory", "redis"] | None = Field(
        None, description="memory | redis; unset: redis when REDIS_URL is set"
    )
    cache_backend: Literal["memory", "redis", "none"] | None = Field(
        None, description="memory | redis | none; unset: redis when REDIS_URL is set"
    )
    cache_ttl: int = Field(3600, gt=0, description="seconds an LLM response stays cached")
    cache_max_entries: int = Field(10_000, gt=0, description="LRU size of the memory cache")

    # -- memory -----------------------------------------------------------------------
    vector_backend: Literal["faiss"] = Field("faiss", description="vector memory backend")
    vector_dimension: int = Field(384, gt=0, description="must match the embedding model")
    vector_index: Literal["flat", "hnsw"] = Field("flat", description="flat | hnsw")
    vector_max_chunks: int | None = Field(
        None, gt=0, description="evict oldest chunks beyond this many"
    )

    # -- shared backends --------------------------------------------------------------
    redis_url: str | None = Field(None, description="Redis for cache, breaker, idempotency")
    postgres_url: str | None = Field(None, description="Postgres for sessions; unset: SQLite")
    kite_redis_prefix: str = Field("kite:", min_length=1, description="prefix of every Redis key")
    kite_home: Path = Field(Path(".kite"), description="where embedded state lives")

    # -- monitoring ---------------------------------------------------------------------
    prometheus_port: int = Field(9090, gt=0, description="Prometheus port (compose stack)")
    grafana_port: int = Field(3000, gt=0, description="Grafana port (compose stack)")
    prometheus_multiproc_dir: str | None = Field(
        None, description="metrics directory shared by several uvicorn workers"
    )

    # -- service ------------------------------------------------------------------------
    kite_api_keys: SecretStr | None = Field(
        None, description="comma-separated bearer keys; unset: no auth"
    )
    kite_api_keys_file: str | None = Field(None, description="file of keys (Docker secrets)")
    kite_metrics_public: bool = Field(True, description="false: /metrics requires a key too")
    kite_rate_limit: str = Field("10/minute", description="per API key or client IP")
    kite_trusted_proxies: str | None = Field(
        None, description="comma-separated IPs whose X-Forwarded-For is trusted"
    )
    kite_max_prompt_chars: int = Field(10_000, gt=0, description="longer prompts get 422")
    kite_shutdown_grace_seconds: float = Field(
        30.0, gt=0, description="in-flight requests get this long on SIGTERM"
    )
    kite_log_level: str = Field("INFO", description="DEBUG | INFO | WARNING | ERROR")
    kite_log_prompts: bool = Field(
        False, description="log full prompts and answers, redacted (off: never; the call log "
        "keeps sha256 hashes)"
    )

    # -- call log, cassettes, traces (docs/observability.md) ------------------------------
    kite_call_log: Literal["sqlite", "postgres", "none"] = Field(
        "sqlite",
        description="sqlite (KITE_HOME/logs.db) | postgres (POSTGRES_URL) | none: the call log; "
        "prompts are stored as hashes unless KITE_LOG_PROMPTS=true",
    )
    kite_cassette: str | None = Field(
        None, description="JSONL cassette every LLM call records to / replays from"
    )
    kite_cassette_mode: Literal["record", "replay", "once", "off"] = Field(
        "once", description="record | replay | once (replay if recorded, else record) | off"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP endpoint for spans (pip install 'kite-lab[otel]'); unset: none"
    )

    # -- OpenAI-compatible gateway and fallbacks (docs/gateway.md) -------------------------
    kite_fallbacks: str | None = Field(
        None,
        description="model=fallback,fallback;... tried in order when a model's breaker is "
        "open or its call fails retryably (* = any model)",
    )
    kite_key_budgets: str | None = Field(
        None,
        description="USD per service key and period: KEY_ID=5/day,*=50/month (429 when spent)",
    )
    kite_model_aliases: str | None = Field(
        None, description="gateway model names: fast=groq/llama-3.1-8b-instant,..."
    )

    def resolved_backend(self, kind: Literal["breaker", "idempotency", "cache"]) -> str:
        """The store a component uses: explicit setting, else redis iff REDIS_URL is set."""
        chosen = getattr(self, f"{kind}_backend")
        if chosen is not None:
            if chosen == "redis" and not self.redis_url:
                raise ConfigError(f"{kind.upper()}_BACKEND=redis needs REDIS_URL")
            return str(chosen)
        return "redis" if self.redis_url else "memory"

    def secret_values(self) -> list[str]:
        """Every secret value currently set, for redaction."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        for url in (self.redis_url, self.postgres_url):
            password = _url_password(url)
            if password:
                values.append(password)
        return [v for v in values if v]

    def masked(self) -> dict[str, Any]:
        """All settings, safe to show: secrets as ``***``, URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "***" if value.get_secret_value() else None
            elif name.endswith("_url") and isinstance(value, str):
                out[name] = mask_url(value)
            else:
                out[name] = str(value) if isinstance(value, Path) else value
        return out


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<at>@)", re.I)


def _url_password(url: str | None) -> str | None:
    match = _URL_PASSWORD.match(url or "")
    return match.group("pw") if match else None


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***{m.group('at')}", url)


def check_env_file(path: str | os.PathLike[str] = ".env") -> None:
    """Raise EnvFileError naming file and line for a line python-dotenv cannot parse."""
    env_path = Path(path)
    if not env_path.is_file():
        return
    from dotenv.parser import parse_stream

    with env_path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                text = binding.original.string
                # a binding's text starts at the blank lines before it: skip them
                blank = text[: len(text) - len(text.lstrip())].count("\n")
                raise EnvFileError(str(env_path), binding.original.line + blank, text)


def load_settings(
    overrides: Mapping[str, Any] | None = None, env_file: str | None = ".env"
) -> KiteSettings:
    """Build settings from defaults, .env, the environment and ``overrides`` (in that order)."""
    overrides = dict(overrides or {})
    _check_keys(overrides)
    if env_file:
        check_env_file(env_file)
    try:
        settings = KiteSettings(_env_file=env_file)  # type: ignore[call-arg]
        for key, value in overrides.items():
            setattr(settings, key, value)
    except ValidationError as exc:
        raise SettingsError.from_validation(exc) from None
    return settings


def _check_keys(keys: Iterable[str]) -> None:
    valid = KiteSettings.model_fields
    for key in keys:
        if key not in valid:
            raise KeyError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(valid))}")


class KiteConfig(MutableMapping[str, Any]):
    """``ai.config``: a dict-like view of the settings that validates every assignment.

    ``ai.config['cache_backend'] = 'redis'`` validates the value, then tells the Kite
    facade so components built from the old value are rebuilt on next use.
    """

    def __init__(self, settings: KiteSettings, on_change: Callable[[str], None] | None = None):
        self._settings = settings
        self._on_change = on_change

    @property
    def settings(self) -> KiteSettings:
        return self._settings

    def __getitem__(self, key: str) -> Any:
        _check_keys([key])
        return getattr(self._settings, key)

    def __setitem__(self, key: str, value: Any) -> None:
        _check_keys([key])
        try:
            setattr(self._settings, key, value)
        except ValidationError as exc:
            raise SettingsError.from_validation(exc) from None
        if self._on_change is not None:
            self._on_change(key)

    def __delitem__(self, key: str) -> None:
        raise TypeError("config keys cannot be deleted; assign None or a new value")

    def __iter__(self) -> Iterator[str]:
        return iter(KiteSettings.model_fields)

    def __len__(self) -> int:
        return len(KiteSettings.model_fields)

    def __repr__(self) -> str:
        return f"KiteConfig({self._settings.masked()!r})"


def env_table_markdown() -> str:
    """The README's table of environment variables, generated from the settings."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in KiteSettings.model_fields.items():
        variable = name.upper()
        aliases = getattr(field.validation_alias, "choices", None)
        if aliases:
            variable = " / ".join(str(a).upper() for a in aliases)
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{variable}` | {shown} | {description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m kite_lab.core.config > table.md
    print(env_table_markdown())
