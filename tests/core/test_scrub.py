"""core.scrub: the one walk that takes secrets out of data written to disk."""

from __future__ import annotations

from kite_lab.core.scrub import scrub


class Carrier:
    def to_dict(self) -> dict:
        return {"note": "key sk-live-abcdefghijklmnopqrst", "n": 3}


def test_values_are_walked_and_credentials_blanked() -> None:
    data = {
        "prompt": 'say "hunter2-secret" twice',
        "headers": {"Authorization": "Bearer abc", "api_key": "x" * 20},
        "max_tokens": 20,
        "items": ("hunter2-secret", 1.5, None, True),
        "obj": Carrier(),
    }
    clean = scrub(data, ["hunter2-secret"])
    assert clean == {
        "prompt": 'say "***" twice',
        "headers": {"Authorization": "***", "api_key": "***"},
        "max_tokens": 20,
        "items": ["***", 1.5, None, True],
        "obj": {"note": "key ***", "n": 3},
    }
    assert scrub(Carrier, []).startswith("<class")  # anything else: its text, redacted
