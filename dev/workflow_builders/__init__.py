"""The shipped workflows' builders: ``workflows/*.json`` (UI format) and ``workflows/api/*.json`` (API format).

    python3 scripts/dev.py workflows           # (re)write every file (python -m workflow_builders)
    python3 scripts/dev.py workflows --check   # exit 1 if a file differs from what these modules write

These modules are the ONE source of the workflow files: never edit them by hand. The shape:

* ``graph``: the graph that serialises to both formats (node types in /object_info's order);
* ``common``: what every family shares (prompt, seed, size, graph helpers, the text-to-image builder
  parameterised by a ``Family``); it imports no family;
* one module per family, ``sd35``, ``flux``, ``sdxl``, and per combination, ``controlnet``,
  ``inpaint``, each with ``build_all() -> {file stem: Graph}``; families import only ``common`` and
  ``graph``, combinations import the families they combine;
* ``write``: the command, which looks the modules up in :data:`MODULES` and writes their graphs.

The tests check that the files equal this output, that the UI files are valid for ComfyUI's frontend
(node types and widget values against the real server's /object_info), that ``harness.workflow_api``
(an independent converter) and the frontend's own ``app.graphToPrompt()`` give the API files, and that
every workflow runs in a real ComfyUI server.
"""
from __future__ import annotations

import importlib

from .graph import Graph

#: the modules that contribute workflows: families first, then combinations
MODULES = ("sd35", "flux", "sdxl", "controlnet", "inpaint", "gguf")


def build_all() -> dict[str, Graph]:
    """Every shipped workflow, file stem -> graph."""
    graphs: dict[str, Graph] = {}
    for module in MODULES:
        built = importlib.import_module(f"{__name__}.{module}").build_all()
        if graphs.keys() & built.keys():
            raise ValueError(f"{module} builds workflows already built: {sorted(graphs.keys() & built.keys())}")
        graphs.update(built)
    return graphs
