"""SwD LoRA files: PEFT's per-module scale, written as ComfyUI-style ``.alpha`` keys.

PEFT scales a LoRA module's update ``B @ A`` by ``lora_alpha / r`` (``lora_alpha / sqrt(r)``
with ``use_rslora``), per module through ``rank_pattern``/``alpha_pattern``. ComfyUI's LoRA
weight function scales it by ``alpha / rank`` when the file has an ``{module}.alpha`` key and by
1 otherwise, and never reads ``adapter_config.json``. Writing ``alpha = scale * rank`` per
module makes ComfyUI apply exactly PEFT's update. PEFT is imported lazily: only PEFT folders
need it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .errors import SwDError

LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"
#: Prefixes a diffusers/PEFT SD3 LoRA's keys may carry before the transformer's module names.
MODULE_PREFIXES = ("base_model.model.", "transformer.")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MAX_CONFIG_BYTES = 1 << 20


def lora_modules(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module key prefix: (A [r, in], B [out, r])}`` for PEFT/diffusers-style LoRA keys."""
    modules = {}
    for key in state_dict:
        if key.endswith(LORA_A):
            prefix = key[: -len(LORA_A)]
            b = state_dict.get(prefix + LORA_B)
            if b is None:
                raise SwDError(f"{key} has no matching {prefix + LORA_B}: the LoRA file is incomplete")
            modules[prefix] = (state_dict[key], b)
        elif key.endswith(LORA_B) and key[: -len(LORA_B)] + LORA_A not in state_dict:
            raise SwDError(f"{key} has no matching lora_A weight: the LoRA file is incomplete")
    for prefix, (a, b) in modules.items():
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise SwDError(
                f"LoRA module {prefix}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not "
                f"form a rank-r pair: the file is corrupt"
            )
    return modules


def module_name(prefix: str) -> str:
    """The transformer module name PEFT's patterns are matched against."""
    for p in MODULE_PREFIXES:
        if prefix.startswith(p):
            return prefix[len(p):]
    return prefix


def read_adapter_config(path: Path):
    """Validate ``adapter_config.json`` and return PEFT's own ``LoraConfig`` for it."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SwDError(f"{path.name} is larger than {MAX_CONFIG_BYTES} bytes: not a PEFT adapter config")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SwDError(f"{path.name} is not readable JSON: {e}") from None
    if not isinstance(raw, dict):
        raise SwDError(f"{path.name} must hold a JSON object, got {type(raw).__name__}")
    if raw.get("peft_type", "LORA") != "LORA":
        raise SwDError(f"{path.name} describes a {raw.get('peft_type')} adapter; only LoRA is supported")
    r, alpha = raw.get("r", 8), raw.get("lora_alpha", raw.get("r", 8))
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise SwDError(f"{path.name}: r must be a positive whole number, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise SwDError(f"{path.name}: lora_alpha must be a number, got {alpha!r}")
    for field in ("rank_pattern", "alpha_pattern"):
        pattern = raw.get(field) or {}
        if not isinstance(pattern, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in pattern.items()
        ):
            raise SwDError(f"{path.name}: {field} must map module names to numbers")
    if raw.get("use_dora"):
        raise SwDError(f"{path.name}: DoRA adapters (use_dora) are not supported; ComfyUI cannot apply PEFT's DoRA")
    try:
        from peft import LoraConfig
    except ImportError:
        raise SwDError("reading a PEFT adapter_config.json needs the 'peft' package: pip install peft") from None
    known = set(LoraConfig.__dataclass_fields__)
    try:
        return LoraConfig(**{k: v for k, v in raw.items() if k in known})
    except (TypeError, ValueError) as e:
        raise SwDError(f"{path.name} is not a valid PEFT LoRA config: {e}") from None


def peft_scale(config, name: str) -> tuple[int, float]:
    """PEFT's ``(r, scale)`` for module ``name``, as ``LoraModel`` computes it."""
    from peft.utils.other import get_pattern_key

    r = config.rank_pattern.get(get_pattern_key(config.rank_pattern.keys(), name), config.r)
    alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), name), config.lora_alpha)
    return r, (alpha / math.sqrt(r) if config.use_rslora else alpha / r)


def with_peft_alphas(state_dict: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with ``{module}.alpha = scale · rank`` for every LoRA module.

    Raises:
        SwDError: if a module's rank in the file disagrees with the config.
    """
    out = dict(state_dict)
    for prefix, (a, _) in lora_modules(state_dict).items():
        r, scale = peft_scale(config, module_name(prefix))
        if a.shape[0] != r:
            raise SwDError(
                f"LoRA module {module_name(prefix)} has rank {a.shape[0]} in the weights but {r} in "
                f"{ADAPTER_CONFIG}: the config does not belong to these weights"
            )
        out[prefix + ".alpha"] = torch.tensor(scale * a.shape[0], dtype=torch.float32)
    return out
