"""The Redis stores' Lua scripts are package data: loaded with importlib.resources, and
listed in pyproject's package-data so a wheel (non-editable install) carries them."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from kite_lab.backends.redis_client import LuaScript, redis_client

ROOT = Path(__file__).resolve().parents[2]
LUA_DIR = files("kite_lab.backends").joinpath("lua")
SCRIPTS = sorted(p.name for p in LUA_DIR.iterdir() if p.name.endswith(".lua"))


def test_every_script_is_declared_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["kite_lab.backends"]
    assert SCRIPTS, "no Lua scripts found"
    for name in SCRIPTS:
        assert any(fnmatch.fnmatch(f"lua/{name}", pat) for pat in patterns), name


def test_every_script_a_store_names_exists():
    named = set()
    for module in (ROOT / "kite_lab").rglob("*.py"):
        named |= set(re.findall(r'LuaScript\("([\w.]+)"', module.read_text(encoding="utf-8")))
    assert named and named <= set(SCRIPTS)
    assert set(SCRIPTS) - named == {"now.lua"}  # the clock prelude, prepended by clock=True


def test_clock_scripts_get_the_now_prelude():
    plain, timed = LuaScript("cache_unlock.lua"), LuaScript("idempotency_release.lua", clock=True)
    assert "now_s" not in plain.source
    assert timed.source.startswith(LUA_DIR.joinpath("now.lua").read_text(encoding="utf-8"))
    assert len(timed.sha) == 40 and timed.sha != plain.sha


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n != "now.lua"])
async def test_every_script_compiles_on_the_server(name, redis_url):
    """SCRIPT LOAD compiles without running: a syntax error fails here, not in production."""
    from kite_lab.backends.redis_client import aclose_redis_clients

    clock = name.split("_")[0] in ("breaker", "idempotency")
    script = LuaScript(name, clock=clock)
    try:
        assert await redis_client(redis_url).script_load(script.source) == script.sha
    finally:
        await aclose_redis_clients()
