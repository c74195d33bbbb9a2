"""The exporter's tests: helpers live in export_helpers.py, the corpus in corpus/.

Importing export_helpers here puts corpus/ on sys.path before any test module imports
``export_corpus``.
"""

from __future__ import annotations

import export_helpers  # noqa: F401 - for its sys.path side effect
