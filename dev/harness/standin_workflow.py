"""Run the shipped workflows where the real SD3.5 files are missing: swap in the stand-in models.

``use_standins(api_prompt, object_info)`` is the one place that decides the substitution; the
demo and the tests use it. ``use_standins_ui(workflow, object_info)`` applies the same
decisions to a UI-format workflow (for the browser test), so that the frontend's
``graphToPrompt()`` of the result equals ``use_standins`` of the API file.

What is replaced, and only when the real files are missing from ComfyUI's model folders
(``object_info`` of the running server lists what is there; with the real files present,
they are used):

* ``CheckpointLoaderSimple.ckpt_name`` -> ``swd-standin-sd35.safetensors`` and
  ``SwDLoraLoader.lora_name`` -> ``swd-standin-lora/adapter_model.safetensors``, together:
  an SwD LoRA fits only its own model, so when either the checkpoint or the LoRA is
  missing both are swapped (a real LoRA on the tiny stand-in, or the stand-in LoRA on a
  real SD3.5, would be refused by the loader's shape check);
* ``UNETLoader.unet_name`` -> ``swd-standin-sd35-transformer.safetensors``, together with the
  checkpoint and the LoRA (the same rule), and ``VAELoader.vae_name`` ->
  ``swd-standin-sd35-vae.safetensors`` when missing (split-file layouts);
* a ``TripleCLIPLoader`` with any of its files missing -> ``CLIPLoader(clip_name=
  "swd-standin-clip_l.safetensors", type="sd3")`` under the same node id (same CLIP output).
  Only a CLIP-L stand-in exists: a full-size T5-XXL (4.7 B parameters) with random weights
  cannot be built or run on a CPU test machine, and ComfyUI's SD3 text encoder accepts
  any subset of CLIP-L / CLIP-G / T5 (it pads the missing parts), so CLIP-L alone gives
  conditioning of the shape SD3.5 expects.

Stand-in files are made by ``harness.standins`` (random weights: noise-like images).
"""
from __future__ import annotations

import copy

from .paths import CLIP_L as STANDIN_CLIP_L
from .paths import SD3_CHECKPOINT as STANDIN_CHECKPOINT
from .paths import SD3_DIFFUSION_MODEL as STANDIN_DIFFUSION_MODEL
from .paths import SD3_LORA as STANDIN_LORA
from .paths import SD3_VAE as STANDIN_VAE

CLIP_TYPE = "sd3"

_TRIPLE = ("clip_name1", "clip_name2", "clip_name3")


def _options(object_info: dict, node: str, name: str) -> set[str]:
    spec = object_info[node]["input"]["required"][name]
    if isinstance(spec[0], list):
        return set(spec[0])
    return set((spec[1] if len(spec) > 1 else {}).get("options", []))


def available_models(object_info: dict) -> dict[str, set[str]]:
    """File names ComfyUI can load, by folder, as its loader nodes list them."""
    return {
        "checkpoints": _options(object_info, "CheckpointLoaderSimple", "ckpt_name"),
        "text_encoders": _options(object_info, "TripleCLIPLoader", "clip_name1"),
        "loras": _options(object_info, "SwDLoraLoader", "lora_name"),
        "diffusion_models": _options(object_info, "UNETLoader", "unet_name"),
        "vae": _options(object_info, "VAELoader", "vae_name"),
    }


def _plan(nodes: dict[str, tuple[str, dict]], object_info: dict) -> dict[str, dict]:
    """``node id -> replacement`` for nodes given as ``id -> (class_type, {input: value})``.

    A replacement is ``{"class_type": ..., "inputs": {...}}`` holding only widget inputs.
    """
    have = available_models(object_info)
    missing_model = any(
        (t == "CheckpointLoaderSimple" and v["ckpt_name"] not in have["checkpoints"])
        or (t == "SwDLoraLoader" and v["lora_name"] not in have["loras"])
        or (t == "UNETLoader" and v["unet_name"] not in have["diffusion_models"])
        for t, v in nodes.values()
    )
    plan = {}
    for node_id, (class_type, values) in nodes.items():
        if class_type == "CheckpointLoaderSimple" and missing_model:
            plan[node_id] = {"class_type": class_type, "inputs": {"ckpt_name": STANDIN_CHECKPOINT}}
        elif class_type == "SwDLoraLoader" and missing_model:
            plan[node_id] = {"class_type": class_type, "inputs": {"lora_name": STANDIN_LORA}}
        elif class_type == "UNETLoader" and missing_model:
            plan[node_id] = {"class_type": class_type, "inputs": {"unet_name": STANDIN_DIFFUSION_MODEL}}
        elif class_type == "VAELoader" and values["vae_name"] not in have["vae"]:
            plan[node_id] = {"class_type": class_type, "inputs": {"vae_name": STANDIN_VAE}}
        elif class_type == "TripleCLIPLoader" and any(values[k] not in have["text_encoders"] for k in _TRIPLE):
            plan[node_id] = {"class_type": "CLIPLoader",
                             "inputs": {"clip_name": STANDIN_CLIP_L, "type": CLIP_TYPE, "device": "default"}}
    return plan


def use_standins(api_prompt: dict, object_info: dict) -> dict:
    """A copy of the API-format ``api_prompt`` with stand-ins for the model files ComfyUI lacks.

    ``object_info`` is the server's ``/object_info`` (it lists the files in the model folders).
    See the module docstring for what is replaced; nothing else changes. Note: only a CLIP-L
    stand-in replaces SD3.5's three text encoders (a full-size random T5-XXL is impossible on a
    CPU test machine).
    """
    prompt = copy.deepcopy(api_prompt)
    nodes = {i: (n["class_type"], n["inputs"]) for i, n in prompt.items()}
    for node_id, repl in _plan(nodes, object_info).items():
        node = prompt[node_id]
        if repl["class_type"] != node["class_type"]:
            node["class_type"] = repl["class_type"]
            node["inputs"] = dict(repl["inputs"])
        else:
            node["inputs"].update(repl["inputs"])
    return prompt


def use_standins_ui(workflow: dict, object_info: dict) -> dict:
    """The same substitution as ``use_standins`` on a UI-format workflow (a copy)."""
    wf = copy.deepcopy(workflow)
    widgets = {  # widget order of the nodes involved (their /object_info input order)
        "CheckpointLoaderSimple": ["ckpt_name"],
        "SwDLoraLoader": ["lora_name", "strength_model"],
        "TripleCLIPLoader": list(_TRIPLE),
        "CLIPLoader": ["clip_name", "type", "device"],
        "UNETLoader": ["unet_name", "weight_dtype"],
        "VAELoader": ["vae_name"],
    }
    nodes = {}
    for node in wf["nodes"]:
        if node["type"] in ("CheckpointLoaderSimple", "SwDLoraLoader", "TripleCLIPLoader", "UNETLoader", "VAELoader"):
            nodes[str(node["id"])] = (node["type"], dict(zip(widgets[node["type"]], node["widgets_values"])))
    by_id = {str(n["id"]): n for n in wf["nodes"]}
    for node_id, repl in _plan(nodes, object_info).items():
        node = by_id[node_id]
        if repl["class_type"] != node["type"]:
            node["type"] = repl["class_type"]
            node["properties"] = {k: v for k, v in node.get("properties", {}).items() if k != "models"}
            node["properties"]["Node name for S&R"] = repl["class_type"]
            node["widgets_values"] = [repl["inputs"][k] for k in widgets[repl["class_type"]]]
        else:
            values = dict(zip(widgets[node["type"]], node["widgets_values"]))
            values.update(repl["inputs"])
            node["widgets_values"] = [values[k] for k in widgets[node["type"]]]
    return wf
