"""PEFT key names for LoRAs on model families whose ComfyUI key map lacks them.

A PEFT folder saved from a diffusers model names its modules ``base_model.model.<diffusers
name>`` (``PeftModel.save_pretrained``). ComfyUI's LoRA key map
(``comfy.lora.model_lora_keys_unet``) already maps the diffusers names of each model it knows,
under a family-specific prefix (FLUX: ``transformer.``), often to slices of fused weights
(FLUX's q/k/v into ``qkv``, the single blocks' q/k/v/``proj_mlp`` into ``linear1``); for
some families it has no ``base_model.model.`` spelling (upstream swd#10: the FLUX SwD LoRA's
keys load nowhere). ``peft_key_map`` adds that spelling as an alias of ComfyUI's own entry,
so the block layout, the offsets and the scale/shift swaps stay ComfyUI's.

A family is one row of ``PEFT_ALIASES``: the ComfyUI model class, the prefix under which
ComfyUI lists the diffusers names, and how a name in ComfyUI's spelling becomes PEFT's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_base

PEFT_PREFIX = "base_model.model."


def _same(name: str) -> str:
    return name


@dataclass(frozen=True)
class PeftAlias:
    """How ComfyUI spells a family's diffusers module names, relative to PEFT.

    Attributes:
        model_class: name of the ``comfy.model_base`` class (subclasses match too, as in
            ComfyUI's own key map).
        source_prefix: the prefix of ComfyUI's key-map entries whose rest is the diffusers
            module name (without ``.weight``).
        peft_name: ComfyUI's module name (after ``source_prefix``) -> the module name PEFT
            saves; ``None`` skips the entry.
    """

    model_class: str
    source_prefix: str
    peft_name: Callable[[str], str | None] = _same


def _unet_peft_name(name: str) -> str:
    """ComfyUI's ``unet.`` spelling of a diffusers UNet module -> PEFT's.

    ComfyUI writes attention projections as the old diffusers LoRA format did,
    ``attn1.processor.to_q`` and ``attn1.processor.to_out``, where the module is
    ``attn1.to_q`` and ``attn1.to_out.0``.
    """
    name = name.replace(".processor.to_", ".to_")
    return name + ".0" if name.endswith(".to_out") else name


#: One row per family whose ComfyUI key map has no ``base_model.model.`` names.
PEFT_ALIASES: tuple[PeftAlias, ...] = (
    PeftAlias("Flux", "transformer."),
    PeftAlias("SDXL", "unet.", _unet_peft_name),
)


def peft_key_map(model, key_map: dict) -> dict:
    """Add ``base_model.model.<name>`` aliases to ComfyUI's LoRA ``key_map`` for ``model``.

    Args:
        model: the ComfyUI model (``ModelPatcher.model``, a ``comfy.model_base.BaseModel``).
        key_map: ComfyUI's key map for it (``comfy.lora.model_lora_keys_unet(model, {})``):
            LoRA module name -> weight key, or ``(weight key, offset[, function])``.

    Returns:
        ``key_map`` itself, with an alias for every diffusers name the family's row finds;
        existing entries are never replaced.
    """
    for row in PEFT_ALIASES:
        cls = getattr(comfy.model_base, row.model_class, None)
        if cls is None or not isinstance(model, cls):
            continue
        for key, target in list(key_map.items()):
            if not key.startswith(row.source_prefix):
                continue
            name = row.peft_name(key[len(row.source_prefix):])
            if name is not None:
                key_map.setdefault(PEFT_PREFIX + name, target)
    return key_map
