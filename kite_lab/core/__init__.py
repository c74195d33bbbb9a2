"""The base layer: settings, data types, the error tree, events and the sync/async runner.

``core`` imports nothing else from kite_lab and no heavy package, so every other layer
can depend on it. Import from its modules (``kite_lab.core.types``, ``.errors``,
``.events``, ``.config``, ``.runner``, ``.validate``); this package itself exports nothing.
"""

__all__: list[str] = []
