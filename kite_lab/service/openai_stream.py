"""Streamed chat completions: OpenAI's ``chat.completion.chunk`` events over SSE.

The contract a client relies on:

- the status and the ``x-kite-model`` header are decided before the first byte: the
  stream is opened, and its first chunk awaited, before the response starts, so a model
  that fails at once (breaker open, 5xx, unreachable) is replaced by its next fallback
  and an error before the first token keeps its HTTP status (429, 503 ...);
- then ``data: {chunk}`` events: the role, the text as the model writes it, the tool
  calls (whole, once the model has finished them), a last chunk with ``finish_reason``,
  the usage chunk when ``stream_options.include_usage`` is set, and ``data: [DONE]``;
- a failure after the first byte (the upstream cut the stream, sent garbage, ...)
  becomes ``data: {"error": {...}}`` and the stream ends *without* ``[DONE]``: the
  openai SDK raises ``APIError``, and no client mistakes a truncated answer for a
  complete one. Once text has been sent no fallback is tried (it would splice two
  answers together).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi.responses import StreamingResponse

from kite_lab.core.types import Completion, StreamChunk
from kite_lab.safety.fallbacks import Needs, first_that_answers
from kite_lab.service.openai_errors import GatewayError, openai_error_for
from kite_lab.service.openai_translate import (
    chunk_body,
    finish_reason,
    model_header,
    new_completion_id,
    tool_call_dicts,
)

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["open_stream"]

log = logging.getLogger("kite_lab.service")

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(payload: dict[str, Any]) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        + (b"\n\n")
    )


async def _aclose(chunks: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def open_stream(
    kite: Kite,
    targets: tuple[str, ...],
    kwargs: dict[str, Any],
    *,
    include_usage: bool,
    request_id: str | None,
    secrets: list[str],
    on_done: Callable[[Completion], Awaitable[None]],
) -> StreamingResponse:
    """The SSE response of a streamed chat request (fallbacks tried before the first byte)."""

    async def attempt(model: str | None) -> tuple[str, AsyncIterator[StreamChunk], StreamChunk]:
        chunks = kite.astream_chunks(model=model, **kwargs).__aiter__()
        try:
            first = await chunks.__anext__()
        except BaseException:
            await _aclose(chunks)
            raise
        provider, name = kite.resolve(model)
        return f"{provider}/{name}", chunks, first

    needs = Needs.of_call(None, kwargs) if len(targets) > 1 else Needs()
    model_id, chunks, first = await first_that_answers(kite, targets, needs, attempt)
    completion_id, created = new_completion_id(), int(time.time())

    def chunk(
        delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
    ) -> bytes:
        return _sse(
            chunk_body(completion_id, created, model_id, delta, finish, usage, include_usage)
        )

    async def events() -> AsyncIterator[bytes]:
        final: Completion | None = None
        try:
            yield chunk({"role": "assistant", "content": ""})
            current: StreamChunk | None = first
            while current is not None:
                if current.text:
                    yield chunk({"content": current.text})
                if current.completion is not None:
                    final = current.completion
                try:
                    current = await chunks.__anext__()
                except StopAsyncIteration:
                    current = None
            if final is None:
                raise GatewayError(
                    502, "the stream ended without a final answer", "provider_bad_response"
                )
            await on_done(final)  # charged before the client can hang up on [DONE]
            if final.tool_calls:
                yield chunk({"tool_calls": tool_call_dicts(final.tool_calls, indexed=True)})
            yield chunk({}, finish_reason(final))
            if include_usage:
                yield chunk(None, usage=final.usage.to_dict())
            yield DONE
        except Exception as exc:
            # not a kite_lab error: the transport under the SDK broke (a cut connection)
            error = openai_error_for(exc, secrets) or GatewayError(
                502,
                f"the provider's stream broke off ({type(exc).__name__})",
                "provider_stream_cut",
            )
            log.warning(
                "stream_failed",
                extra={
                    "event": "stream_failed",
                    "error": type(exc).__name__,
                    "status": error.status,
                    "model": model_id,
                },
            )
            body = error.body(request_id)
            body["error"]["status"] = error.status
            yield _sse(body)  # no [DONE]: the answer is incomplete
        finally:
            await _aclose(chunks)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, "x-kite-model": model_header(model_id)},
    )
