"""``scrub``: a JSON-ready copy of any value with every secret taken out.

Why one function: the JSON-lines tracer and the call log both write event and request
data to disk; both must walk the *values* (not the JSON text, where an escaped secret
would slip through), blank credential-named fields, and turn objects into plain data the
same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kite_lab.core.errors import redact

__all__ = ["CREDENTIAL_KEYS", "scrub"]

#: a field whose name contains one of these holds a credential: its value is never kept
CREDENTIAL_KEYS = ("api_key", "apikey", "password", "secret", "authorization", "token")


def scrub(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """``value`` as JSON-ready data (dicts, lists, str, numbers, None), secrets redacted."""
    return _walk(value, list(secrets))


def _walk(value: Any, secrets: list[str | None]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = redact(str(key), secrets)
            credential = any(word in name.lower() for word in CREDENTIAL_KEYS)
            # ("max_tokens" names a number, not a credential: only text values are blanked)
            blank = credential and isinstance(item, str) and item
            out[name] = "***" if blank else _walk(item, secrets)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_walk(item, secrets) for item in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return _walk(to_dict(), secrets)
        except Exception:  # a broken to_dict must not lose the record
            pass
    return redact(str(value), secrets)
