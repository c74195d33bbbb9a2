"""Providers: where a completion or an embedding actually comes from.

An LLM provider turns an ``LLMRequest`` (model, messages, system prompt, tools,
parameters) into a ``Completion`` (``generate``) or a stream of ``StreamChunk``
(``stream``). It does not cache, count, time or price: the call pipeline does that for
every provider alike, so a provider is small. Each one declares its ``name``, the
``key_env`` holding its key, its ``capabilities`` and a strict pydantic ``Options`` model
of the parameters it accepts (an unknown one is an ``InvalidParameter`` naming it).

The registry maps a provider name to its class: the built-ins (openai, anthropic, groq,
ollama, local), third-party ones through the ``kite_lab.providers`` entry-point group,
or ones registered at run time. Model ids are ``provider/model`` or a bare model served
by LLM_PROVIDER; ``resolve_model`` applies the rules (see ``registry``).

Adding a provider::

    from kite_lab.providers import LLMProvider, register_provider

    class EchoProvider(LLMProvider):
        name = "echo"
        default_model = "echo-1"

        async def generate(self, request): ...
        async def stream(self, request): ...

    register_provider("echo", EchoProvider)      # then Kite(model="echo/echo-1")

or, from a package, an entry point (no import of your package until it is used)::

    [project.entry-points."kite_lab.providers"]
    echo = "my_package.echo:EchoProvider"

SDK-based providers translate their SDK's exceptions with ``map_sdk_error``
(``sdk_errors``). Embedding providers (``embeddings``) turn text into unit vectors:
fastembed with the bundled all-MiniLM-L6-v2 (``bundled_minilm``) or OpenAI.

Importing this package is light: the names below load their module on first access,
and no SDK (openai, anthropic, llama_cpp, fastembed) is imported until a provider of
that kind is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.providers.base import BaseOptions, Capabilities, LLMProvider, LLMRequest
    from kite_lab.providers.embeddings import EmbeddingProvider, build_embeddings
    from kite_lab.providers.pricing import cost_usd, register_price
    from kite_lab.providers.registry import (
        available_providers,
        provider_class,
        register_provider,
        resolve_model,
    )
    from kite_lab.providers.sdk_errors import map_sdk_error

__all__ = [
    "BaseOptions",
    "Capabilities",
    "EmbeddingProvider",
    "LLMProvider",
    "LLMRequest",
    "available_providers",
    "build_embeddings",
    "cost_usd",
    "map_sdk_error",
    "provider_class",
    "register_price",
    "register_provider",
    "resolve_model",
]


_HOME = {
    "BaseOptions": "base",
    "Capabilities": "base",
    "EmbeddingProvider": "embeddings",
    "LLMProvider": "base",
    "LLMRequest": "base",
    "available_providers": "registry",
    "build_embeddings": "embeddings",
    "cost_usd": "pricing",
    "map_sdk_error": "sdk_errors",
    "provider_class": "registry",
    "register_price": "pricing",
    "register_provider": "registry",
    "resolve_model": "registry",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
