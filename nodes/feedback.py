"""What the nodes have to tell the user, on the node in the browser (see web/swd.js).

One format everywhere: ``{"text": [lines joined by newlines]}``, ComfyUI's own PreviewText
output; a line starting with ``Warning:`` is a warning (web/swd.js shows it in the warning
colour with a sign). Nodes that finish with something to say return it as their ``ui``
output (ComfyUI sends it as the ``executed`` event, again from its cache on a re-run);
SwD Sampler (SAMPLER), which speaks only while SamplerCustom runs it, sends the same payload
as the ``swd.messages`` event with its own node id. web/swd.js writes both as plain text
(never HTML) into one read-only box under the node's widgets, in the classic canvas and in
the newer frontend's Vue nodes.

ComfyUI re-sends a cached node's ``executed`` event only when a node that runs needs it, so
after a reload (or in another tab) a re-run with a new seed would leave the LoRA loader's box
empty. What each node showed is kept here by the node's signature (its inputs, links followed:
what ComfyUI's cache keys its output on), and the page asks ``GET /swd/messages`` for the nodes
ComfyUI names in ``execution_cached``.

Also the route ``GET /swd/presets``: every preset's scales and sigmas as SwD Schedule's fields
write them, so the page can show the running preset's values.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import sys
import threading

from comfy_execution.graph_utils import is_link

from .. import swd_core
from ._api import ui

EVENT = "swd.messages"
WARNING = "Warning: "
log = logging.getLogger("swd")
#: ``{(signature of the node that ran, class of the node that spoke): text}``, newest last (`remember`)
_SHOWN: collections.OrderedDict[tuple[str, str], list[str]] = collections.OrderedDict()
_SHOWN_MAX = 512
_SHOWN_LOCK = threading.Lock()


def text_output(lines: list[str]) -> ui.PreviewText:
    """The ``ui`` output for ``lines`` (ComfyUI's PreviewText: ``{"text": ["line\\nline"]}``), also kept
    for the page should ComfyUI answer this node from its cache later (`remember`)."""
    remember(None, lines)
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
    remember(str(node_id), lines)
    srv.send_sync(EVENT, {"node": str(node_id), "text": ["\n".join(lines)]}, srv.client_id)


def signature(prompt: dict, node_id: str, memo: dict | None = None) -> str:
    """Node ``node_id`` of an API ``prompt`` as ComfyUI's cache keys its output: its class and input
    values, each link replaced by the linked node's signature (equal signatures: the same output)."""
    memo = {} if memo is None else memo
    if node_id not in memo:
        node = prompt[node_id]
        inputs = {name: [signature(prompt, value[0], memo), value[1]] if is_link(value) else value
                  for name, value in node.get("inputs", {}).items()}
        text = json.dumps([node.get("class_type"), inputs], sort_keys=True, default=str)
        memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
    return memo[node_id]


def _running_prompt(srv) -> dict | None:
    """The API prompt ComfyUI is running now (one at a time), or None."""
    running = srv.prompt_queue.get_current_queue_volatile()[0]
    return running[0][2] if running else None


def remember(speaker: str | None, lines: list[str]) -> None:
    """Keep what node ``speaker`` (None: the node running now) shows, under the signature of the node
    running now: SwD Sampler (SAMPLER) speaks while the SamplerCustom* node using it runs."""
    srv = _server()
    if srv is None or not lines:
        return
    try:
        prompt, running = _running_prompt(srv), str(srv.last_node_id)
        key = (signature(prompt, running), prompt[speaker or running]["class_type"])
    except (AttributeError, KeyError, IndexError, TypeError):  # no prompt running, or not from its graph
        return
    with _SHOWN_LOCK:
        _SHOWN[key] = list(lines)
        _SHOWN.move_to_end(key)
        while len(_SHOWN) > _SHOWN_MAX:
            _SHOWN.popitem(last=False)


def shown(prompt: dict, node_id: str) -> list[str] | None:
    """What node ``node_id`` of ``prompt`` showed when a node of the same signature last ran (itself,
    or for SwD Sampler (SAMPLER) a node using it), or None."""
    memo: dict = {}
    kind = prompt[node_id]["class_type"]
    users = [other for other, node in prompt.items()
             if any(is_link(v) and v[0] == node_id for v in node.get("inputs", {}).values())]
    with _SHOWN_LOCK:
        for runner in (node_id, *users):
            lines = _SHOWN.get((signature(prompt, runner, memo), kind))
            if lines is not None:
                return lines
    return None


def _prompt_of(srv, prompt_id: str) -> dict | None:
    """The API prompt of ``prompt_id``: running, or finished (ComfyUI's history)."""
    for item in srv.prompt_queue.get_current_queue_volatile()[0]:
        if item[1] == prompt_id:
            return item[2]
    entry = srv.prompt_queue.get_history(prompt_id=prompt_id).get(prompt_id)
    return entry["prompt"][2] if entry else None


def preset_table() -> dict[str, dict[str, str]]:
    """``{preset: {"scales": text, "sigmas": text}}`` (`swd_core.preset_texts`)."""
    return {name: dict(zip(("scales", "sigmas"), swd_core.preset_texts(name), strict=True))
            for name in swd_core.PRESETS}


def register_routes(on_prompt, prompt_middleware) -> None:
    """``GET /swd/presets`` and ``/swd/messages`` on ComfyUI's server (also under ``/api``), the ``on_prompt``
    handler (`schedule.remember_prompt`) and POST /prompt's middleware (`schedule.file_under_wrong_input`);
    nothing without a server."""
    srv = _server()
    if srv is None:
        return
    from aiohttp import web

    srv.add_on_prompt_handler(on_prompt)
    if getattr(srv.app, "frozen", False):  # custom nodes load before the server starts; if not, the error stays
        log.warning("the server is already running: SwD Schedule's errors stay under 'sigmas'")
    else:
        srv.app.middlewares.append(web.middleware(prompt_middleware))

    @srv.routes.get("/swd/presets")
    async def presets(_request):
        return web.json_response(preset_table())

    @srv.routes.get("/swd/messages")
    async def messages(request):
        """``?prompt_id=&node=``: ``{"text": [...]}`` that node showed when it last ran, or ``{"text": null}``."""
        prompt = _prompt_of(srv, request.query.get("prompt_id", ""))
        node = request.query.get("node", "")
        lines = shown(prompt, node) if prompt and node in prompt else None
        return web.json_response({"text": ["\n".join(lines)] if lines else None})
