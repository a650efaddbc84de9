"""Run the shipped workflows where the real model files are missing: swap in the stand-in models.

``use_standins(api_prompt, object_info)`` is the one place that decides the substitution; the
demo and the tests use it. ``use_standins_ui(workflow, object_info)`` applies the same
decisions to a UI-format workflow (for the browser test), so that the frontend's
``graphToPrompt()`` of the result equals ``use_standins`` of the API file.

What is replaced, and only when the real files are missing from ComfyUI's model folders
(``object_info`` of the running server lists what is there; with the real files present,
they are used), per model family (the workflow's model loader names it: a FLUX file name
means FLUX, an SDXL one (``sd_xl``/``sdxl``) SDXL, anything else SD3.5):

* the model loader (``CheckpointLoaderSimple.ckpt_name`` / ``UNETLoader.unet_name``) and
  ``SwDLoraLoader.lora_name``, together, by the family's stand-in model and SwD LoRA: an SwD
  LoRA fits only its own model, so when either the model or the LoRA is missing both are
  swapped (a real LoRA on the tiny stand-in, or the stand-in LoRA on a real model, would be
  refused by the loader's checks); ``UNETLoader.weight_dtype`` is kept (fp8 runs as fp8);
* the text encoders (``TripleCLIPLoader``, ``DualCLIPLoader``) with any file missing ->
  ``CLIPLoader(clip_name="swd-standin-clip_l.safetensors")`` under the same node id (same CLIP
  output): type ``sd3`` for SD3.5 (its text encoder accepts any subset of CLIP-L / CLIP-G / T5
  and pads the missing parts, so CLIP-L alone gives conditioning of the shape SD3.5 expects),
  type ``stable_diffusion`` for FLUX (whose stand-in transformer takes CLIP-L's 768-wide
  context: see ``harness.standins.flux``). Only a CLIP-L stand-in exists: a full-size T5-XXL
  (4.7 B parameters) with random weights cannot be built or run on a CPU test machine;
* ``VAELoader.vae_name`` -> the family's stand-in VAE;
* ``ControlNetLoader.control_net_name`` -> the family's ControlNet stand-in, together
  with the model and the LoRA (like the LoRA, it fits only its own model: a missing ControlNet
  swaps the model too, and a missing model swaps the ControlNet). SD3.5: the stand-in in the layout
  of Stability's SD3.5 files (``harness.standins.sd3_controlnet``); FLUX: the XLabs-layout stand-in,
  the layout of the shipped workflow's XLabs canny file (``harness.standins.flux_controlnet``); SDXL:
  an LDM-layout SDXL ControlNet (``harness.standins.sdxl_controlnet``).

Stand-in files are made by ``harness.standins`` (random weights: noise-like images).
"""
from __future__ import annotations

import copy

from . import paths

#: Per family: the stand-in for each loader input, and the CLIP type the stand-in text encoder loads as.
FAMILIES = {
    "sd3": dict(model={"CheckpointLoaderSimple": ("ckpt_name", paths.SD3_CHECKPOINT),
                       "UNETLoader": ("unet_name", paths.SD3_DIFFUSION_MODEL)},
                lora=paths.SD3_LORA, vae=paths.SD3_VAE, clip_type="sd3", controlnet=paths.SD35_CONTROLNET),
    "flux": dict(model={"UNETLoader": ("unet_name", paths.FLUX_DIFFUSION_MODEL),
                        "UnetLoaderGGUF": ("unet_name", paths.FLUX_GGUF)},  # ComfyUI-GGUF's loader
                 lora=paths.FLUX_LORA, vae=paths.FLUX_VAE, clip_type="stable_diffusion",
                 controlnet=paths.FLUX_CONTROLNET_XLABS),
    # the SDXL stand-in checkpoint carries its VAE and full-size CLIP-L + CLIP-G; its ControlNet stand-in is
    # in the LDM layout (the real diffusers-layout SDXL ControlNets load through the same ControlNetLoader)
    "sdxl": dict(model={"CheckpointLoaderSimple": ("ckpt_name", paths.SDXL_CHECKPOINT)},
                 lora=paths.SDXL_LORA, vae=None, clip_type=None, controlnet=paths.SDXL_CONTROLNET),
}
TEXT_ENCODER_LOADERS = {"TripleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3"),
                        "DualCLIPLoader": ("clip_name1", "clip_name2")}
#: Widget order of every node the substitution touches (their /object_info input order).
WIDGETS = {
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name", "weight_dtype"],
    "UnetLoaderGGUF": ["unet_name"],
    "SwDLoraLoader": ["lora_name", "strength_model"],
    "TripleCLIPLoader": ["clip_name1", "clip_name2", "clip_name3"],
    "DualCLIPLoader": ["clip_name1", "clip_name2", "type", "device"],
    "CLIPLoader": ["clip_name", "type", "device"],
    "VAELoader": ["vae_name"],
    "ControlNetLoader": ["control_net_name"],
}
FOLDERS = {"CheckpointLoaderSimple": "checkpoints", "UNETLoader": "diffusion_models", "UnetLoaderGGUF": "unet_gguf",
           "SwDLoraLoader": "loras",
           "VAELoader": "vae", "ControlNetLoader": "controlnet"}


def _options(object_info: dict, node: str, name: str) -> set[str]:
    spec = object_info[node]["input"]["required"][name]
    if isinstance(spec[0], list):
        return set(spec[0])
    return set((spec[1] if len(spec) > 1 else {}).get("options", []))


def available_models(object_info: dict) -> dict[str, set[str]]:
    """File names ComfyUI can load, by folder, as its loader nodes list them."""
    return {
        "checkpoints": _options(object_info, "CheckpointLoaderSimple", "ckpt_name"),
        "diffusion_models": _options(object_info, "UNETLoader", "unet_name"),
        "text_encoders": _options(object_info, "TripleCLIPLoader", "clip_name1"),
        "vae": _options(object_info, "VAELoader", "vae_name"),
        "loras": _options(object_info, "SwDLoraLoader", "lora_name"),
        "controlnet": _options(object_info, "ControlNetLoader", "control_net_name"),
        # ComfyUI-GGUF's .gguf files, where that pack is installed
        "unet_gguf": _options(object_info, "UnetLoaderGGUF", "unet_name") if "UnetLoaderGGUF" in object_info else set(),
    }


def _family(nodes: dict[str, tuple[str, dict]]) -> str:
    names = [v.get("ckpt_name", v.get("unet_name", "")) for t, v in nodes.values()
             if t in ("CheckpointLoaderSimple", "UNETLoader", "UnetLoaderGGUF")]
    if any("flux" in n.lower() for n in names):
        return "flux"
    return "sdxl" if any("sd_xl" in n.lower() or "sdxl" in n.lower() for n in names) else "sd3"


def _plan(nodes: dict[str, tuple[str, dict]], object_info: dict) -> dict[str, dict]:
    """``node id -> replacement`` for nodes given as ``id -> (class_type, {input: value})``.

    A replacement is ``{"class_type": ..., "inputs": {...}}`` holding only widget inputs.
    """
    have = available_models(object_info)
    family = FAMILIES[_family(nodes)]

    def missing(class_type, values):
        field = {"SwDLoraLoader": "lora_name", "VAELoader": "vae_name",
                 "ControlNetLoader": "control_net_name"}.get(class_type)
        field = field or family["model"].get(class_type, (None,))[0]
        return field is not None and values[field] not in have[FOLDERS[class_type]]

    fitted = (*family["model"], "SwDLoraLoader") + (("ControlNetLoader",) if family["controlnet"] else ())
    missing_model = any(missing(t, v) for t, v in nodes.values() if t in fitted)
    plan = {}
    for node_id, (class_type, values) in nodes.items():
        if class_type in family["model"] and missing_model:
            field, standin = family["model"][class_type]
            plan[node_id] = {"class_type": class_type, "inputs": {field: standin}}
        elif class_type == "SwDLoraLoader" and missing_model:
            plan[node_id] = {"class_type": class_type, "inputs": {"lora_name": family["lora"]}}
        elif class_type == "ControlNetLoader" and family["controlnet"] and missing_model:
            plan[node_id] = {"class_type": class_type, "inputs": {"control_net_name": family["controlnet"]}}
        elif class_type == "VAELoader" and family["vae"] and missing(class_type, values):
            plan[node_id] = {"class_type": class_type, "inputs": {"vae_name": family["vae"]}}
        elif class_type in TEXT_ENCODER_LOADERS and family["clip_type"] and any(
                values[k] not in have["text_encoders"] for k in TEXT_ENCODER_LOADERS[class_type]):
            plan[node_id] = {"class_type": "CLIPLoader",
                             "inputs": {"clip_name": paths.CLIP_L, "type": family["clip_type"], "device": "default"}}
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
    nodes = {str(n["id"]): (n["type"], dict(zip(WIDGETS[n["type"]], n["widgets_values"])))
             for n in wf["nodes"] if n["type"] in WIDGETS}
    by_id = {str(n["id"]): n for n in wf["nodes"]}
    for node_id, repl in _plan(nodes, object_info).items():
        node = by_id[node_id]
        if repl["class_type"] != node["type"]:
            node["type"] = repl["class_type"]
            node["properties"] = {k: v for k, v in node.get("properties", {}).items() if k != "models"}
            node["properties"]["Node name for S&R"] = repl["class_type"]
            node["widgets_values"] = [repl["inputs"][k] for k in WIDGETS[repl["class_type"]]]
        else:
            values = dict(zip(WIDGETS[node["type"]], node["widgets_values"]))
            values.update(repl["inputs"])
            node["widgets_values"] = [values[k] for k in WIDGETS[node["type"]]]
    return wf
