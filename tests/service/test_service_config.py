"""Service settings parse strictly and fail at start with a message naming the variable."""

from __future__ import annotations

import pytest

from kite_lab.core.config import load_settings
from kite_lab.core.errors import ConfigError
from kite_lab.service.auth import APIKeyAuth, key_id, load_api_keys
from kite_lab.service.limits import RouteLimits, parse_rate_limits


def test_rate_limit_syntax():
    assert parse_rate_limits("10/minute") == {
        "/complete": "10/minute",
        "/chat": "10/minute",
        "/agents/{name}/run": "10/minute",
    }
    assert parse_rate_limits("5/second, /chat=30/minute, /agents/{name}/run=off") == {
        "/complete": "5/second",
        "/chat": "30/minute",
        "/agents/{name}/run": None,
    }
    assert set(parse_rate_limits("off").values()) == {None}
    with pytest.raises(ConfigError, match="one default limit"):
        parse_rate_limits("10/minute, 100/hour")
    with pytest.raises(ConfigError, match="/route=N/period"):
        parse_rate_limits("chat=5/minute")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"kite_rate_limit": "ten per fortnight"}, "KITE_RATE_LIMIT"),
        ({"kite_trusted_proxies": "10.0.0.0/8, not-an-ip"}, "KITE_TRUSTED_PROXIES"),
    ],
)
def test_bad_limit_settings_fail_early(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        RouteLimits(load_settings(overrides, env_file=None))


def test_client_ip_uses_forwarded_for_only_behind_trusted_proxies():
    limits = RouteLimits(load_settings({"kite_trusted_proxies": "10.0.0.0/8, ::1"}, env_file=None))

    def scope(peer, xff=None):
        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return {"client": (peer, 1234), "headers": headers}

    assert limits.client_ip(scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    assert limits.client_ip(scope("10.1.2.3", "1.2.3.4")) == "1.2.3.4"
    assert limits.client_ip(scope("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9")) == "1.2.3.4"
    assert limits.client_ip(scope("10.1.2.3", "garbage, 1.2.3.4")) == "1.2.3.4"
    assert limits.client_ip(scope("10.1.2.3", "1.2.3.4, garbage")) == "10.1.2.3"
    assert limits.client_ip(scope("::1", "2001:db8::1")) == "2001:db8::1"


def test_api_keys_from_variable_and_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# rotated 2025-01\nfile-key-0123456789abcdef\n\n", encoding="utf-8")
    settings = load_settings(
        {"kite_api_keys": "env-key-0123456789abcdef", "kite_api_keys_file": str(keys_file)},
        env_file=None,
    )
    keys = load_api_keys(settings)
    assert keys == ["env-key-0123456789abcdef", "file-key-0123456789abcdef"]
    auth = APIKeyAuth(keys)
    assert auth.authenticate("Bearer file-key-0123456789abcdef") == key_id(keys[1])
    assert auth.authenticate("bearer  env-key-0123456789abcdef ") == key_id(keys[0])
    assert auth.authenticate("Bearer file-key-0123456789abcdeF") is None
    assert auth.authenticate(None) is None and auth.authenticate("Token x") is None
    assert not APIKeyAuth([]).enabled


def test_short_or_missing_key_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="16 characters"):
        load_api_keys(load_settings({"kite_api_keys": "short"}, env_file=None))
    missing = load_settings({"kite_api_keys_file": str(tmp_path / "nope")}, env_file=None)
    with pytest.raises(ConfigError, match="KITE_API_KEYS_FILE"):
        load_api_keys(missing)
