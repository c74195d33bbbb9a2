"""Batch runs over data: ``ai.map`` / ``ai.amap`` (issue 14; see docs/batch.md).

One concept per module: ``plan`` (data -> frame, prompts, row keys), ``estimate``
(dry run, worst cases), ``checkpoint`` (+ ``_sqlite``, ``_postgres``: finished rows),
``runner`` (the asyncio engine), ``progress`` (tqdm), ``ray_engine`` (``engine="ray"``),
``mapping`` (one map from start to finish) and ``methods`` (the facade's mixin).
Nothing is imported here, so ``import kite_lab`` stays light.
"""
