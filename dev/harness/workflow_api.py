"""UI-format workflow (ComfyUI frontend graph JSON, version 0.4) -> API-format prompt.

``ui_to_api(workflow, object_info)`` does what the frontend's ``graphToPrompt()`` (frontend
1.32) does for flat graphs, driven by a server's ``/object_info``:

* ``widgets_values`` are matched to the node's widget inputs in ``input_order`` (required,
  then optional). Widget inputs are INT/FLOAT/STRING/BOOLEAN/COMBO inputs without
  ``forceInput``. Frontend-only values are skipped: the control value after an INT with
  ``control_after_generate`` (or named ``seed``/``noise_seed``), the control + filter values
  after a COMBO with ``control_after_generate``, and the upload button's value after an
  ``image_upload``/``video_upload``/``audio_upload`` combo.
* Linked inputs become ``[str(origin_id), origin_slot]``; a linked widget input replaces its value.
* Virtual nodes (Note, MarkdownNote, Reroute, PrimitiveNode: not in /object_info) and
  muted nodes (mode 2) are left out; bypassed nodes (mode 4), subgraphs, reroutes and
  primitive nodes are refused (not needed for the shipped workflows).
* ``_meta.title`` is the node's title (the display name when it has none).

``widget_layout(node_def)`` gives the widget slots of one node definition; the tests use it
to check widget values against the definitions.
"""
from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
VIRTUAL_NODES = {"Note", "MarkdownNote"}
UNSUPPORTED_VIRTUAL = {"Reroute", "PrimitiveNode"}
MODE_NEVER, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    pass


def _inputs_in_order(node_def: dict):
    for section in ("required", "optional"):
        specs = node_def.get("input", {}).get(section, {}) or {}
        order = node_def.get("input_order", {}).get(section) or list(specs)
        for name in order:
            spec = specs[name]
            yield section, name, spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})


def combo_options(spec_type, opts: dict) -> list | None:
    """The options of a combo input spec (old style ``[[...], {...}]`` or ``["COMBO", {"options": [...]}]``)."""
    if isinstance(spec_type, list):
        return spec_type
    if spec_type == "COMBO":
        return list(opts.get("options", []))
    return None


def widget_layout(node_def: dict) -> list[dict]:
    """The node's ``widgets_values`` slots in order: ``{"name", "type", "options", "api"}``.

    ``api`` is False for the frontend-only slots (seed control, upload button); ``name`` is
    the input name for real widgets and ``"<input>.control"`` / ``"<input>.upload"`` else.
    """
    slots = []
    for _section, name, spec_type, opts in _inputs_in_order(node_def):
        is_combo = isinstance(spec_type, list) or spec_type == "COMBO"
        if not (is_combo or spec_type in WIDGET_TYPES) or opts.get("forceInput"):
            continue
        kind = "COMBO" if is_combo else spec_type
        slots.append({"name": name, "type": kind, "options": opts, "api": True,
                      "choices": combo_options(spec_type, opts) if is_combo else None})
        if kind == "INT" and opts.get("control_after_generate", name in ("seed", "noise_seed")):
            slots.append({"name": f"{name}.control", "type": "CONTROL", "options": {}, "api": False,
                          "choices": ["fixed", "increment", "decrement", "randomize"]})
        elif kind == "COMBO" and opts.get("control_after_generate"):
            slots.append({"name": f"{name}.control", "type": "CONTROL", "options": {}, "api": False,
                          "choices": ["fixed", "increment", "decrement", "randomize", "increment-wrap"]})
            slots.append({"name": f"{name}.filter", "type": "STRING", "options": {}, "api": False, "choices": None})
        elif kind == "COMBO" and any(opts.get(k) for k in UPLOAD_OPTIONS):
            slots.append({"name": f"{name}.upload", "type": "UPLOAD", "options": {}, "api": False, "choices": None})
    return slots


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt for a UI-format ``workflow`` (see the module docstring)."""
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("subgraphs are not supported")
    links = {link[0]: link for link in workflow.get("links", [])}
    nodes = {node["id"]: node for node in workflow["nodes"]}
    prompt = {}
    for node in workflow["nodes"]:
        type_ = node["type"]
        if type_ in VIRTUAL_NODES:
            continue
        if type_ in UNSUPPORTED_VIRTUAL:
            raise WorkflowError(f"node {node['id']} ({type_}) is not supported by this converter")
        if type_ not in object_info:
            raise WorkflowError(f"node {node['id']}: type {type_!r} is not registered in this ComfyUI "
                                f"(missing node pack?)")
        mode = node.get("mode", 0)
        if mode == MODE_NEVER:
            continue
        if mode == MODE_BYPASS:
            raise WorkflowError(f"node {node['id']} ({type_}) is bypassed; not supported by this converter")
        node_def = object_info[type_]
        layout = widget_layout(node_def)
        values = node.get("widgets_values") or []
        if isinstance(values, dict):
            raise WorkflowError(f"node {node['id']} ({type_}): dict widgets_values are not supported")
        if len(values) != len(layout):
            raise WorkflowError(
                f"node {node['id']} ({type_}) has {len(values)} widget values, its definition "
                f"{len(layout)} ({', '.join(s['name'] for s in layout)})")
        inputs = {}
        for slot, value in zip(layout, values):
            if slot["api"]:
                inputs[slot["name"]] = {"__value__": value} if isinstance(value, list) else value
        for inp in node.get("inputs", []):
            if inp.get("link") is None:
                continue
            link = links[inp["link"]]
            origin = nodes.get(link[1])
            if origin is None:
                raise WorkflowError(f"link {link[0]} starts at missing node {link[1]}")
            if origin["type"] in VIRTUAL_NODES | UNSUPPORTED_VIRTUAL:
                raise WorkflowError(f"link {link[0]} starts at a {origin['type']} node (not supported)")
            inputs[inp["name"]] = [str(link[1]), int(link[2])]
        title = node.get("title") or node_def.get("display_name") or type_
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": type_, "_meta": {"title": title}}
    # like graphToPrompt: drop links to nodes that are not in the prompt (muted ones)
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt
