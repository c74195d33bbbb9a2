"""Bearer-key authentication for the HTTP service.

Keys come from KITE_API_KEYS (comma-separated) and/or KITE_API_KEYS_FILE (one key per
line, ``#`` comments; the Docker-secrets way). With no key configured the service is open.

Every presented key is compared with every configured key using ``hmac.compare_digest``
over SHA-256 digests, without an early exit, so response time says nothing about how much
of a key was right nor which key matched. A request is then known by a short digest of
its key (``key_id``), which is safe to use in rate-limit and idempotency keys and logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings

__all__ = ["APIKeyAuth", "key_id", "load_api_keys"]


def key_id(key: str) -> str:
    """A non-reversible, stable id for ``key`` (12 hex chars of its SHA-256)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def load_api_keys(settings: KiteSettings) -> list[str]:
    """The configured service keys from KITE_API_KEYS and KITE_API_KEYS_FILE."""
    keys: list[str] = []
    if settings.kite_api_keys is not None:
        keys += [k.strip() for k in settings.kite_api_keys.get_secret_value().split(",")]
    if settings.kite_api_keys_file:
        path = Path(settings.kite_api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"KITE_API_KEYS_FILE={path} cannot be read ({exc.strerror}); "
                "mount the secret file or unset the variable"
            ) from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys += [k.strip() for k in line.split(",")]
    keys = [k for k in keys if k]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ConfigError(
            f"{len(short)} service API key(s) are shorter than 16 characters; "
            "use long random keys (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return keys


class APIKeyAuth:
    """Checks ``Authorization: Bearer <key>`` against the configured keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]
        self._ids = [key_id(k) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def authenticate(self, authorization: str | None) -> str | None:
        """The key id of a valid ``Authorization`` header value, else None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        match: str | None = None
        for digest, ident in zip(self._digests, self._ids, strict=True):
            if hmac.compare_digest(digest, presented):  # no early exit: constant work
                match = ident
        return match
