"""One Kite's call log: calls from the pipeline, runs and tools from events, as rows.

Why two feeds: the pipeline's log stage hands over what only it has (the request's
messages and parameters, the answer, the tool calls); agent runs, tool calls and map
rows are already events (``agent:*``, ``tool:*``, ``map:*``) with their ids, so they are
taken from the bus. Both become ``CallRecord`` rows linked by ``run_id``/``parent_id``.

Why the call path does almost nothing: ``record_call`` puts a tuple of references on the
writer's queue. JSON, redaction (every secret value and anything shaped like a key) and
hashing (``KITE_LOG_PROMPTS=false``: prompts, answers and tool arguments are stored as
``sha256:...`` only) run on the writer thread. Failures become a ``CallLogWarning`` once
per kind and a counter (``stats()``); the call that was logged never sees them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import CallLogError, redact
from kite_lab.core.scrub import scrub
from kite_lab.core.types import canonical_json

from .record import CallRecord
from .store import CallLogStore
from .writer import LogWriter, get_writer

if TYPE_CHECKING:
    from kite_lab.core.events import Event, EventBus, Subscription
    from kite_lab.core.types import Completion
    from kite_lab.providers.base import LLMRequest

__all__ = ["CallLog", "CallLogWarning"]

log = logging.getLogger("kite_lab.log")


class CallLogWarning(UserWarning):
    """The call log could not write (the call itself succeeded)."""


class CallLog:
    """Rows for one Kite's calls, runs and tools, written off the call path."""

    def __init__(
        self,
        store: CallLogStore,
        *,
        log_prompts: bool = False,
        secrets: Callable[[], Iterable[str]] = tuple,
        writer: LogWriter | None = None,
    ) -> None:
        self.store = store
        self.log_prompts = log_prompts
        self._secrets = secrets
        self._writer = writer or get_writer()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._subscriptions: list[Subscription] = []
        self._breakers: dict[str, str] = {}
        self._runs: dict[str, tuple[str | None, str | None, Any]] = {}
        self._tools: dict[str, Any] = {}
        self._batch_secrets: list[str] | None = None
        #: rows written, rows dropped (queue full), failed writes
        self.rows_written = self.rows_dropped = self.write_errors = 0

    # -- the call path ---------------------------------------------------------------
    def record_call(
        self,
        *,
        provider: str,
        namespace: str,
        request: LLMRequest,
        request_id: str,
        context: Mapping[str, Any],
        completion: Completion | None = None,
        error: BaseException | None = None,
        latency_s: float | None = None,
        stream: bool = False,
        replayed: bool = False,
    ) -> None:
        """Queue one LLM call (answered or failed); returns at once."""
        item = ("llm", time.time(), provider, namespace, request, request_id, context,
                completion, error, latency_s, stream, replayed,
                self._breakers.get(provider), _where(context))
        self._submit(item)

    def _submit(self, item: Any) -> None:
        if not self._writer.submit(self, item):
            self.rows_dropped += 1
            self._warn("queue", f"{self.store.describe()}: the writer is behind and its queue "
                       "is full; rows are being dropped (calls are not affected)")

    # -- events: runs, tools, map rows, breaker states ---------------------------------
    def attach(self, bus: EventBus) -> None:
        for pattern, handler in (("agent:*", self._on_agent), ("tool:*", self._on_tool),
                                 ("map:*", self._on_map), ("breaker:state", self._on_breaker)):
            self._subscriptions.append(bus.subscribe(pattern, handler))

    def detach(self) -> None:
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()

    def _on_breaker(self, event: Event) -> None:
        self._breakers[str(event.data.get("name"))] = str(event.data.get("new"))

    def _on_agent(self, event: Event) -> None:
        d = event.data
        run_id = d.get("run_id")
        if not isinstance(run_id, str):
            return
        if event.name == "agent:start":
            outer = (_current_context() or {}).get("run_id")  # the run this one runs in
            self._runs[run_id] = (outer if outer != run_id else None, d.get("model"),
                                  d.get("input"))
        elif event.name == "agent:end":
            parent, model, task = self._runs.pop(run_id, (None, None, None))
            self._submit(("agent", event.time, event.data, parent, model, task,
                          _where(event.data)))

    def _on_tool(self, event: Event) -> None:
        d = event.data
        call_id = str(d.get("call_id"))
        if event.name == "tool:call":
            self._tools[call_id] = d.get("arguments")
        elif event.name == "tool:result":
            self._submit(("tool", event.time, d, self._tools.pop(call_id, None),
                          _where(d)))

    def _on_map(self, event: Event) -> None:
        if event.name in ("map:row", "map:done"):
            self._submit(("map", event.time, event.name, event.data, _where(event.data)))

    # -- the writer thread -----------------------------------------------------------
    def serialize(self, item: Any) -> CallRecord | None:
        kind = item[0]
        if kind == "llm":
            return self._llm_row(*item[1:])
        if kind == "agent":
            return self._agent_row(*item[1:])
        if kind == "tool":
            return self._tool_row(*item[1:])
        return self._map_row(*item[1:])

    def _llm_row(self, ts: float, provider: str, namespace: str, request: LLMRequest,
                 request_id: str, context: Mapping[str, Any], completion: Completion | None,
                 error: BaseException | None, latency_s: float | None, stream: bool,
                 replayed: bool, breaker: str | None, where: tuple[str | None, str | None]
                 ) -> CallRecord:
        messages = [m.to_dict() for m in request.messages]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        params: dict[str, Any] = dict(request.params)
        if request.tools:
            params["tools"] = [tool.name for tool in request.tools]
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        run_id = context.get("run_id") or context.get("map_run")  # an agent run, or ai.map
        row = CallRecord(
            ts=ts, kind="llm", request_id=request_id, run_id=run_id,
            parent_id=context.get("parent_id") or context.get("map_row") or run_id,
            name=context.get("agent"), provider=provider, model=request.model,
            params=self._text(params, private=False), messages=self._text(messages),
            prompt_hash=request.cache_key(namespace), latency_s=latency_s, stream=stream,
            replayed=replayed, breaker_state=breaker or "closed", cell_id=where[0],
            script=where[1],
        )
        if completion is not None:
            row.model = completion.model or request.model
            row.answer = self._text(completion.text, raw=True)
            if completion.tool_calls:
                row.tool_calls = self._text([c.to_dict() for c in completion.tool_calls])
            row.prompt_tokens = completion.usage.prompt_tokens
            row.completion_tokens = completion.usage.completion_tokens
            row.cost_usd = completion.cost_usd
            row.latency_s = completion.latency_s if latency_s is None else latency_s
            row.cached = completion.cached
        if error is not None:
            row.error = type(error).__name__
            row.error_message = redact(str(error), self._secret_list())[:2000]
        return row

    def _agent_row(self, ts: float, d: Mapping[str, Any], parent: str | None,
                   model: str | None, task: Any, where: tuple[str | None, str | None]
                   ) -> CallRecord:
        failed = d.get("success") is False
        return CallRecord(
            ts=ts, kind="agent", request_id=d.get("run_id"), run_id=d.get("run_id"),
            parent_id=parent, name=d.get("agent"), model=model,
            messages=None if task is None else self._text(task, raw=True),
            answer=None if d.get("response") is None else self._text(d["response"], raw=True),
            prompt_tokens=d.get("prompt_tokens"), completion_tokens=d.get("completion_tokens"),
            cost_usd=d.get("cost_usd"), latency_s=d.get("latency_s"),
            error=(d.get("error_type") or "AgentRunFailed") if failed else None,
            error_message=redact(str(d.get("error")), self._secret_list()) if failed else None,
            cell_id=where[0], script=where[1],
        )

    def _tool_row(self, ts: float, d: Mapping[str, Any], arguments: Any,
                  where: tuple[str | None, str | None]) -> CallRecord:
        ok = d.get("ok") is not False
        return CallRecord(
            ts=ts, kind="tool", request_id=str(d.get("call_id")), run_id=d.get("run_id"),
            parent_id=d.get("run_id"), name=d.get("tool"),
            params=None if arguments is None else self._text(arguments),
            answer=None if d.get("result") is None else self._text(d.get("result")),
            latency_s=d.get("latency_s"), error=None if ok else str(d.get("outcome") or "error"),
            error_message=None if ok else redact(str(d.get("error")), self._secret_list()),
            cell_id=where[0], script=where[1],
        )

    def _map_row(self, ts: float, name: str, d: Mapping[str, Any],
                 where: tuple[str | None, str | None]) -> CallRecord:
        """``map:row`` (one row: key, outcome, cost, latency, error class) or ``map:done``
        (the whole ``ai.map`` run: status, spend, elapsed time)."""
        run_id = d.get("map_run") or d.get("run_id")
        if name == "map:done":
            status = d.get("status")
            return CallRecord(
                ts=ts, kind="map", request_id=run_id, run_id=run_id, parent_id=None,
                name=d.get("name") or "map", cost_usd=d.get("spent_usd"),
                latency_s=d.get("elapsed_s"),
                error=None if status in (None, "completed") else str(status),
                answer=json.dumps({k: v for k, v in d.items() if isinstance(v, int | float)
                                   and not isinstance(v, bool)}, sort_keys=True),
                cell_id=where[0], script=where[1])
        error = d.get("error")
        return CallRecord(
            ts=ts, kind="map_row", request_id=str(d.get("row_key")), run_id=run_id,
            parent_id=run_id, name=d.get("outcome"), cost_usd=d.get("cost_usd"),
            latency_s=d.get("latency_s"), cached=d.get("outcome") == "cached",
            error=None if not error else str(error), cell_id=where[0], script=where[1],
        )

    def _secret_list(self) -> list[str]:
        if self._batch_secrets is None:
            try:
                self._batch_secrets = [s for s in self._secrets() if s]
            except Exception:
                self._batch_secrets = []
        return self._batch_secrets

    def _text(self, value: Any, *, raw: bool = False, private: bool = True) -> str:
        """JSON (or the text itself), redacted; a hash when prompts are not logged."""
        if private and not self.log_prompts:
            digest = canonical_json(value) if not isinstance(value, str) else value
            return "sha256:" + hashlib.sha256(digest.encode("utf-8")).hexdigest()
        if raw and isinstance(value, str):
            return redact(value, self._secret_list())
        # every string was scrubbed on the way in (a secret with a quote would survive a
        # text replace of the JSON), so the JSON text needs no second pass
        return json.dumps(scrub(value, self._secret_list()), ensure_ascii=False, default=str)

    def failed(self, exc: BaseException) -> None:
        self.write_errors += 1
        self._batch_secrets = None
        message = str(exc) if isinstance(exc, CallLogError) else (
            f"{self.store.describe()}: {type(exc).__name__}: {exc}")
        self._warn(type(exc).__name__ + message[:60],
                   f"call log not written: {message} (the call itself succeeded)")

    def written(self, count: int) -> None:
        self.rows_written += count
        self._batch_secrets = None  # secrets may change between batches (ai.config)

    def _warn(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message)
        warnings.warn(message, CallLogWarning, stacklevel=2)

    # -- control ---------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued so far is written; False on timeout."""
        return self._writer.flush(timeout)

    def stats(self) -> dict[str, Any]:
        return {"where": self.store.describe(), "written": self.rows_written,
                "dropped": self.rows_dropped, "errors": self.write_errors}

    def close(self) -> None:
        """Stop listening, write what is queued, release the connection."""
        self.detach()
        self._writer.flush(10.0, then=self.store.close)

    def __repr__(self) -> str:
        stats = self.stats()
        return (f"CallLog({stats['where']}, written={stats['written']}, "
                f"dropped={stats['dropped']}, errors={stats['errors']})")


def _current_context() -> dict[str, Any] | None:
    """The fields ``event_context`` adds to events right now (e.g. an outer run's id)."""
    from kite_lab.core import events

    return events._context.get()


_script: list[str | None] = []


def _where(context: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(notebook cell id, script path) of the code making the call, where known."""
    cell = context.get("cell_id")
    shell = _running_shell()
    if shell is not None:  # a notebook or an IPython session: no script path
        return cell if cell is not None else _cell_id(shell), None
    if not _script:
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        _script.append(str(main) if main else None)
    return cell, _script[0]


def _running_shell() -> Any:
    """The IPython shell running this code, or None (IPython merely imported is not one)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _cell_id(shell: Any) -> str | None:
    try:
        kernel = getattr(shell, "kernel", None)
        if kernel is not None:
            parent = kernel.get_parent() if hasattr(kernel, "get_parent") else {}
            cell = (parent or {}).get("metadata", {}).get("cellId")
            if cell:
                return str(cell)
        return f"In[{shell.execution_count}]"
    except Exception:
        return None
