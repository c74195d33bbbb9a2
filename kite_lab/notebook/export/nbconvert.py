"""``jupyter nbconvert --to kite-script``: the kite-lab exporter as an nbconvert Exporter.

Why: people already export with nbconvert, and its ``--to python`` leaves ``%%kite`` cells
as ``get_ipython().run_cell_magic(...)``, which fails in plain Python. This exporter runs
the same compiler as ``kite-lab export`` (so both produce the same file) and is registered
under the ``nbconvert.exporters`` entry point::

    [project.entry-points."nbconvert.exporters"]
    kite-script = "kite_lab.notebook.export.nbconvert:KiteScriptExporter"

Options: ``--KiteScriptExporter.main=True`` (wrap in ``main()``) or
``--KiteScriptExporter.service=True`` (a module ``kite-lab serve --app MODULE:app`` runs).
"""

from __future__ import annotations

import os
from typing import Any

from nbconvert.exporters import Exporter
from traitlets import Bool

__all__ = ["KiteScriptExporter"]


class KiteScriptExporter(Exporter):
    """Compile ``%%kite`` cells into Kite API calls; the rest of the notebook as a script."""

    export_from_notebook = "Kite script (.py)"
    output_mimetype = "text/x-python"

    main = Bool(False, help="wrap the top-level work in main() with a __main__ guard"
                ).tag(config=True)
    service = Bool(False, help="a module that `kite-lab serve --app MODULE:app` runs"
                   ).tag(config=True)

    def _file_extension_default(self) -> str:
        return ".py"

    def from_notebook_node(self, nb: Any, resources: dict[str, Any] | None = None,  # type: ignore[override]
                           **kw: Any) -> tuple[str, dict[str, Any]]:
        from kite_lab.notebook.export.build import export_source

        nb_copy, resources = super().from_notebook_node(nb, resources, **kw)
        meta = resources.get("metadata") or {}
        name = meta.get("name") or "notebook"
        base = meta.get("path") or None
        label = f"{name}.ipynb"
        if base:  # errors name the notebook as the user gave it, like kite-lab export
            label = os.path.join(base, label) if not os.path.isabs(label) else label
        script = export_source(nb_copy, label=label, base_dir=base, main=self.main,
                               service=self.service)
        resources["output_extension"] = self.file_extension
        return str(script), resources
