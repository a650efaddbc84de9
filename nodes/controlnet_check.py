"""ControlNets must fit the model's family: another family's ControlNet fails deep inside it.

Measured on ComfyUI 0.3.75: the SD3 ControlNet stand-in on a FLUX model stops SwD Sampler at
its first step with torch's "mat1 and mat2 shapes cannot be multiplied (1x768 and 2048x128)"
from the ControlNet's pooled-text embedder (``comfy/cldm/mmdit.py``, called by
``ControlNet.get_control`` in ``comfy/controlnet.py``); nothing names the ControlNet. The
check reads the conditioning's ``control`` entries (and each one's ``previous_controlnet``
chain) before the first step and names the ControlNet's kind and the model's family.

Only families listed in `CONTROL_MODELS` are checked; a control object whose model is unknown
(a node pack's own control type) is left alone.
"""
from __future__ import annotations

from .. import swd_core

#: ComfyUI's ControlNet model classes (``"module.Class"``, matched exactly) per SwD family name.
CONTROL_MODELS = {
    "SD3.5": ("comfy.cldm.mmdit.ControlNet",  # SD3 ControlNets in diffusers layout (InstantX, ...)
              "comfy.cldm.dit_embedder.ControlNetEmbedder"),  # Stability's SD3.5 Large canny/depth/blur
    "FLUX": ("comfy.ldm.flux.controlnet.ControlNetFlux",),  # XLabs, Mistoline, InstantX (union)
    # SDXL ControlNets and T2I-Adapters (UNet ControlNets: SD1.5's have the same class, and fail on
    # their shapes; not run with SwD here)
    "SDXL": ("comfy.cldm.cldm.ControlNet", "comfy.t2i_adapter.adapter.Adapter"),
}
#: What to call a ControlNet model class in the message.
KINDS = {
    "comfy.cldm.cldm.ControlNet": "an SD1.5/SDXL ControlNet",
    "comfy.t2i_adapter.adapter.Adapter": "an SD1.5/SDXL T2I-Adapter",
    "comfy.t2i_adapter.adapter.Adapter_light": "an SD1.5 T2I-Adapter",
    "comfy.cldm.mmdit.ControlNet": "an SD3 ControlNet",
    "comfy.cldm.dit_embedder.ControlNetEmbedder": "an SD3.5 ControlNet",
    "comfy.ldm.flux.controlnet.ControlNetFlux": "a FLUX ControlNet",
    "comfy.ldm.hydit.controlnet.HunYuanControlNet": "a HunyuanDiT ControlNet",
    "comfy.ldm.qwen_image.controlnet.QwenImageControlNetModel": "a Qwen-Image ControlNet",
}


def _control_models(control):
    """The model of every ControlNet in ``control``'s chain (``previous_controlnet``)."""
    seen = set()
    while control is not None and id(control) not in seen:
        seen.add(id(control))
        model = getattr(control, "control_model", None) or getattr(control, "t2i_model", None)
        if model is not None:
            yield model
        control = getattr(control, "previous_controlnet", None)


def check_controlnets(conds: dict | None, family: swd_core.ModelFamily, node: str) -> None:
    """Refuse a ControlNet of another family than ``family`` in the guider's ``conds``
    (``{"positive": [cond dict, ...], ...}``), naming ``node``; raises ``SwDError``."""
    allowed = CONTROL_MODELS.get(family.name)
    if allowed is None:
        return
    for name, entries in (conds or {}).items():
        for entry in entries:
            for model in _control_models(entry.get("control")):
                kind = f"{type(model).__module__}.{type(model).__qualname__}"
                if kind not in allowed:
                    raise swd_core.SwDError(
                        f"{node}: the {name} conditioning has {KINDS.get(kind, 'a ControlNet of class ' + kind)}, "
                        f"but the model is {family.name}: use a ControlNet made for {family.name}"
                    )
