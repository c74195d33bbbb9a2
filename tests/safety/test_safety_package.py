"""The public surface of kite_lab.safety: every exported name resolves, and importing the
safety modules does not import redis or limits (they load on first use)."""

from __future__ import annotations

import json
import subprocess
import sys

import kite_lab.safety


def test_every_exported_name_resolves():
    for name in kite_lab.safety.__all__:
        assert getattr(kite_lab.safety, name) is not None, name
    assert set(kite_lab.safety.__all__) <= set(dir(kite_lab.safety))


def test_safety_imports_stay_light():
    code = (
        "import sys, json, kite_lab, kite_lab.safety, kite_lab.memory.cache\n"
        "from kite_lab.safety import CircuitBreaker, RateLimiter, KillSwitch\n"
        "from kite_lab.safety.breaker import build_breaker\n"
        "from kite_lab.safety.idempotency import build_idempotency\n"
        "print(json.dumps(sorted(m for m in ('redis', 'limits', 'openai', 'anthropic')"
        " if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == []
