"""What the nodes have to tell the user, on the node in the browser (see web/swd.js).

One format everywhere: ``{"text": [lines joined by newlines]}``, ComfyUI's own PreviewText
output; a line starting with ``Warning:`` is a warning (web/swd.js shows it in the warning
colour with a sign). Nodes that finish with something to say return it as their ``ui``
output (ComfyUI sends it as the ``executed`` event, again from its cache on a re-run);
SwD Sampler (SAMPLER), which speaks only while SamplerCustom runs it, sends the same payload
as the ``swd.messages`` event with its own node id. web/swd.js writes both as plain text
(never HTML) into one read-only box under the node's widgets, in the classic canvas and in
the newer frontend's Vue nodes.

Also the route ``GET /swd/presets``: every preset's scales and sigmas as SwD Schedule's fields
write them, so the page can show the running preset's values.
"""
from __future__ import annotations

import logging
import sys

from .. import swd_core
from ._api import ui

EVENT = "swd.messages"
WARNING = "Warning: "
log = logging.getLogger("swd")


def text_output(lines: list[str]) -> ui.PreviewText:
    """The ``ui`` output for ``lines`` (ComfyUI's PreviewText: ``{"text": ["line\\nline"]}``)."""
    return ui.PreviewText("\n".join(lines))


def _server():
    """ComfyUI's running PromptServer, or None (ComfyUI imported in-process, as tests/host does)."""
    module = sys.modules.get("server")  # main.py imports it before it loads the custom nodes
    return getattr(getattr(module, "PromptServer", None), "instance", None)


def send(node_id: str | None, lines: list[str]) -> None:
    """Show ``lines`` on node ``node_id`` now (the page of the client that queued the prompt)."""
    srv = _server()
    if srv is None or node_id is None or not lines:
        return
    srv.send_sync(EVENT, {"node": str(node_id), "text": ["\n".join(lines)]}, srv.client_id)


def preset_table() -> dict[str, dict[str, str]]:
    """``{preset: {"scales": text, "sigmas": text}}`` (`swd_core.preset_texts`)."""
    return {name: dict(zip(("scales", "sigmas"), swd_core.preset_texts(name), strict=True))
            for name in swd_core.PRESETS}


def register_routes(on_prompt) -> None:
    """``GET /swd/presets`` on ComfyUI's server (also as ``/api/swd/presets``) and the ``on_prompt``
    handler (`schedule.remember_prompt`); nothing without a server."""
    srv = _server()
    if srv is None:
        return
    from aiohttp import web

    srv.add_on_prompt_handler(on_prompt)

    @srv.routes.get("/swd/presets")
    async def presets(_request):
        return web.json_response(preset_table())
