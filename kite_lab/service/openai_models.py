"""Which models the gateway serves: model ids, aliases, and the ``/v1/models`` list.

A request's ``model`` is resolved here, before any provider is called:

1. an alias from KITE_MODEL_ALIASES (``fast=groq/llama-3.1-8b-instant``) is replaced by
   its target (an alias may name another alias; a cycle is a configuration error);
2. the id is resolved as everywhere in kite (``provider/model``, or a bare model of
   LLM_PROVIDER);
3. its provider must be *served*: the default provider, a provider whose key is set,
   or ``local`` with its model installed. Anything else is a 404 in OpenAI's envelope
   that says how to list the models -- not a 503 about a key the client cannot set.

The list is the served providers' default models, the priced models of each, LLM_MODEL,
every KITE_FALLBACKS model, the aliases (with ``kite_target``) and the embedding model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError, UnknownProvider
from kite_lab.service.openai_errors import GatewayError, model_not_found

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["ModelCatalog", "Target", "parse_aliases"]

#: ``created`` of every listed model (kite does not know when a provider made a model)
CREATED = 1_700_000_000


def parse_aliases(value: str | None) -> dict[str, str]:
    """``"fast=groq/llama-3.1-8b-instant, smart=anthropic/claude-..."`` -> a dict."""
    aliases: dict[str, str] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, target = (p.strip() for p in item.partition("="))
        if not sep or not name or not target or "/" in name:
            raise ConfigError(
                f"KITE_MODEL_ALIASES: {item!r} is not NAME=provider/model "
                "(a name without '/'; e.g. fast=groq/llama-3.1-8b-instant)"
            )
        aliases[name] = target
    return aliases


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved chat model: its canonical id and provider, and the alias used, if any."""

    id: str
    provider: str
    model: str
    alias: str | None = None


class ModelCatalog:
    """Model resolution and listing for one app (settings are fixed for its lifetime)."""

    def __init__(self, kite: Kite) -> None:
        self.kite = kite
        settings = kite.settings
        self.aliases = parse_aliases(settings.kite_model_aliases)
        for name in self.aliases:
            self._follow(name)  # a cycle fails at start, not at the first request
        self._served: dict[str, bool] = {}
        self._resolved: dict[str, Target] = {}

    def _follow(self, name: str) -> str:
        seen: list[str] = []
        while name in self.aliases:
            if name in seen:
                raise ConfigError(f"KITE_MODEL_ALIASES: alias cycle {' -> '.join([*seen, name])}")
            seen.append(name)
            name = self.aliases[name]
        return name

    # -- providers ------------------------------------------------------------------------
    def served(self, provider: str) -> bool:
        """Whether this gateway answers with ``provider`` (its key is set, ...)."""
        known = self._served.get(provider)
        if known is None:
            known = self._served[provider] = self._check(provider)
        return known

    def _check(self, provider: str) -> bool:
        kite = self.kite
        try:
            default = kite.provider_name
        except ConfigError:
            default = None
        try:
            instance = kite.provider(provider)
        except ConfigError:  # no key / no llama-cpp: not served
            return False
        if provider == default or instance.key_env is not None:
            return True
        if provider == "local":
            from kite_lab.providers.registry import local_model_installed

            return local_model_installed() or bool(kite.settings.local_model_path)
        return False  # a keyless server (ollama) nobody configured as LLM_PROVIDER

    # -- chat models ----------------------------------------------------------------------
    def resolve(self, model: str) -> Target:
        """The target of a request's ``model``; GatewayError 404 when it is not served."""
        hit = self._resolved.get(model)
        if hit is not None:
            return hit
        alias = model if model in self.aliases else None
        wanted = self._follow(model)
        try:
            provider, name = self.kite.resolve(wanted)
        except UnknownProvider as exc:
            raise model_not_found(model, f" (no provider {exc.name!r})") from None
        except ConfigError:
            raise model_not_found(model, " (no provider is configured)") from None
        if not self.served(provider):
            raise model_not_found(model, f" (provider {provider!r} is not configured here)")
        target = Target(f"{provider}/{name}", provider, name, alias)
        if len(self._resolved) < 4096:  # ids come from clients: bounded
            self._resolved[model] = target
        return target

    def fallbacks(self, target: Target) -> tuple[str, ...]:
        """KITE_FALLBACKS for ``target`` (aliases in the chain resolved to model ids)."""
        from kite_lab.safety.fallbacks import chain_for

        chain = chain_for(self.kite, target.id)
        return tuple(self._follow(t) for t in chain)

    # -- embeddings -----------------------------------------------------------------------
    def embedding_model(self) -> str:
        return self.kite.settings.embedding_model

    def check_embedding_model(self, model: str) -> None:
        settings = self.kite.settings
        served = settings.embedding_model
        if model not in (served, f"{settings.embedding_provider}/{served}"):
            raise GatewayError(
                404,
                f"The embedding model {model!r} is not served here; this gateway embeds with "
                f"{served!r} (EMBEDDING_MODEL). GET /v1/models lists it.",
                "model_not_found",
                param="model",
            )

    # -- the list -------------------------------------------------------------------------
    def cards(self) -> list[dict[str, Any]]:
        from kite_lab.providers.pricing import known_models
        from kite_lab.providers.registry import available_providers, provider_class

        settings = self.kite.settings
        ids: dict[str, None] = {}
        for provider in available_providers():
            if not self.served(provider):
                continue
            ids[f"{provider}/{provider_class(provider).default_model}"] = None
            for model_id in known_models():
                if model_id.startswith(provider + "/") and "embedding" not in model_id:
                    ids[model_id] = None
        extra = [settings.llm_model] if settings.llm_model else []
        from kite_lab.safety.fallbacks import parse_fallbacks

        for primary, chain in parse_fallbacks(settings.kite_fallbacks).items():
            extra += [m for m in (primary, *chain) if m != "*"]
        for model in extra:
            try:
                ids[self.resolve(model).id] = None
            except GatewayError:
                pass
        cards = [_card(model_id, model_id.partition("/")[0]) for model_id in ids]
        for name, target in self.aliases.items():
            cards.append(_card(name, "kite-alias", kite_target=self._follow(target)))
        embedding = f"{settings.embedding_provider}/{settings.embedding_model}"
        cards.append(
            _card(
                settings.embedding_model,
                settings.embedding_provider,
                kite_kind="embedding",
                kite_target=embedding,
            )
        )
        return cards

    def card(self, model: str) -> dict[str, Any]:
        """One model's card (``GET /v1/models/{model}``); 404 when not served."""
        for card in self.cards():
            if card["id"] == model:
                return card
        target = self.resolve(model)
        return _card(target.id, target.provider)


def _card(model_id: str, owner: str, **extra: Any) -> dict[str, Any]:
    card: Mapping[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": CREATED,
        "owned_by": owner,
        "kite_target": None,
        "kite_kind": "chat",
    }
    return {**card, **extra}
