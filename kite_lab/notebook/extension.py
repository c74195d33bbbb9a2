"""``%load_ext kite_lab``: register ``KiteMagics`` on the shell, once per kernel.

Loading must stay cheap (the benchmark goal is <= 100 ms over a bare kernel): it reads the
pyproject section and registers the magics; the Kite, its settings, the SDKs, pandas and
ipywidgets load on the first cell that needs them.

Precedence of configuration: IPython config (``ipython_config.py``, ``--KiteMagics.x``)
wins over ``[tool.kite_lab]``, which wins over the defaults; ``%config`` later wins over all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from kite_lab.notebook.magics import KiteMagics
    from kite_lab.notebook.settings import load_pyproject_config

    if ipython.magics_manager.registry.get("KiteMagics") is not None:
        return  # %load_ext twice, or %reload_ext: keep the kernel's Kite and its state
    magics = KiteMagics(shell=ipython)
    values, source = load_pyproject_config()
    explicit = set(ipython.config.KiteMagics) if "KiteMagics" in ipython.config else set()
    magics.apply_config({k: v for k, v in values.items() if k not in explicit}, source)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)  # so %config KiteMagics.x = ... finds it


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.pop("KiteMagics", None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        if getattr(table.get("kite"), "__self__", None) is magics:
            del table["kite"]
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
