"""Which call log a Kite writes to, from its settings; one store per destination.

Why one store per destination and process: every Kite of a process (a notebook makes
several, tests make hundreds) that points at the same ``logs.db`` or database shares
one connection, and at most ``MAX_OPEN`` stay open, so neither file handles nor
Postgres connections grow with the number of Kites. Exit flushes, then closes them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from kite_lab.core.errors import ConfigError

from .stage import CallLog
from .store import CallLogStore, SQLiteCallLog
from .writer import exit_hooks

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = ["LOG_FILE", "build_call_log", "open_store", "settings_key"]

LOG_FILE = "logs.db"
MAX_OPEN = 8

_stores: OrderedDict[str, CallLogStore] = OrderedDict()
_lock = threading.Lock()


def settings_key(settings: KiteSettings) -> tuple[object, ...]:
    """What decides a Kite's log: when it changes (``ai.config``), the log is rebuilt."""
    return (settings.kite_call_log, settings.kite_home, settings.postgres_url,
            settings.kite_log_prompts)


def open_store(settings: KiteSettings) -> CallLogStore | None:
    """The store KITE_CALL_LOG names (None when it is ``none``); nothing connects yet."""
    kind = settings.kite_call_log
    if kind == "none":
        return None
    if kind == "postgres":
        if not settings.postgres_url:
            raise ConfigError("KITE_CALL_LOG=postgres needs POSTGRES_URL; set it, or use "
                              "KITE_CALL_LOG=sqlite (KITE_HOME/logs.db) or none")
        key = "postgres:" + settings.postgres_url
    else:
        path = Path(settings.kite_home).expanduser().absolute() / LOG_FILE
        key = "sqlite:" + str(path)
    with _lock:
        store = _stores.get(key)
        if store is None:
            if kind == "postgres":
                from .postgres_store import PostgresCallLog

                store = PostgresCallLog(str(settings.postgres_url))
            else:
                store = SQLiteCallLog(key.removeprefix("sqlite:"))
            _stores[key] = store
            while len(_stores) > MAX_OPEN:
                _, oldest = _stores.popitem(last=False)
                oldest.close()  # reconnects by itself if a log still uses it
        else:
            _stores.move_to_end(key)
        return store


def build_call_log(settings: KiteSettings, bus: EventBus | None = None) -> CallLog | None:
    """The call log for ``settings`` (None when KITE_CALL_LOG=none), listening on ``bus``."""
    store = open_store(settings)
    if store is None:
        return None
    log = CallLog(store, log_prompts=settings.kite_log_prompts,
                  secrets=settings.secret_values)
    if bus is not None:
        log.attach(bus)
    return log


def _close_all() -> None:
    with _lock:
        for store in _stores.values():
            store.close()


exit_hooks.append(_close_all)
