"""Test doubles for code that talks to LLM providers.

:class:`FakeLLMServer` serves the OpenAI and Anthropic HTTP APIs from a local
thread so the *real* SDKs can be exercised end to end -- plain and streamed
replies, tool calls, usage, provider error bodies, dropped connections and
timeouts -- without network access or API keys. Pytest users get the
``fake_llm`` / ``fake_llm_session`` fixtures via the ``kite_lab`` plugin.

Only the standard library and h11 are imported here.
"""

from ._models import Fault, RecordedRequest, Reply, ToolCallSpec
from ._structured import SeenImage, sample_for_schema
from .fake_server import FakeLLMServer, Handler

__all__ = [
    "Fault",
    "FakeLLMServer",
    "Handler",
    "RecordedRequest",
    "Reply",
    "SeenImage",
    "ToolCallSpec",
    "sample_for_schema",
]
