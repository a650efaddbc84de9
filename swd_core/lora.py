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
import re
from pathlib import Path

import torch

from .errors import SwDError

LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"
#: Prefixes a diffusers/PEFT SD3 LoRA's keys may carry before the transformer's module names.
MODULE_PREFIXES = ("base_model.model.", "transformer.", "unet.")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MAX_CONFIG_BYTES = 1 << 20
#: Largest LoRA rank accepted from a config (SwD LoRAs use 64; a rank is at most a layer's width).
MAX_RANK = 1 << 16


def lora_modules(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module key prefix: (A, B)}`` for PEFT/diffusers-style LoRA keys.

    Linear layers: ``A [r, in]``, ``B [out, r]``; convolutions (UNet LoRAs):
    ``A [r, in, kh, kw]``, ``B [out, r, 1, 1]``.
    """
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
        if a.ndim not in (2, 4) or b.ndim != a.ndim or a.shape[0] != b.shape[1]:
            raise SwDError(
                f"LoRA module {prefix}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not "
                f"form a rank-r pair: the file is corrupt"
            )
    return modules


#: Module-name markers of each family's diffusers model: FLUX's single blocks; the UNet's blocks
#: (SDXL or SD1.5/SD2, told apart by `_unet_family`); SD3's position embedding and MMDiT-X's
#: second attention. SD3's joint blocks share every other name with FLUX's double blocks, so
#: they are told apart only by index (`FLUX_DOUBLE_BLOCKS`).
FAMILY_MARKERS = (
    ("FLUX", ("single_transformer_blocks.",)),
    ("UNet", ("down_blocks.", "up_blocks.", "mid_block.")),
    ("SD3.5", ("pos_embed.",)),
)
#: FLUX.1 has 19 double blocks; SD3.5 Medium and Large have 24 and 38 joint blocks.
FLUX_DOUBLE_BLOCKS = 19
_BLOCK_INDEX = re.compile(r"^transformer_blocks\.(\d+)\.")
#: SDXL's UNet stacks 2 and 10 transformer blocks per attention; SD1.5/SD2 have one, and have
#: attention at the first level (``down_blocks.0``, ``up_blocks.3``), where SDXL has none.
_DEEP_BLOCK = re.compile(r"\.attentions\.\d+\.transformer_blocks\.[1-9]")
_SD1_LEVEL = re.compile(r"^(down_blocks\.0|up_blocks\.3)\.attentions\.")
SDXL_CONTEXT = 2048  # CLIP-L + OpenCLIP-G features: attn2.to_k's input width


def _unet_family(names: list[str], shapes: dict[str, tuple]) -> str | None:
    if any(_DEEP_BLOCK.search(n) for n in names):
        return "SDXL"
    if any(_SD1_LEVEL.match(n) for n in names):
        return "SD1.5"
    widths = {shape[1] for n, shape in shapes.items() if n.endswith(".attn2.to_k") and len(shape) > 1}
    if not widths:
        return None  # e.g. convolutions only: the shape check decides
    return "SDXL" if widths == {SDXL_CONTEXT} else "SD1.5"


def lora_family(modules) -> str | None:
    """The model family (``swd_core.families`` names) a diffusers/PEFT LoRA belongs to.

    Args:
        modules: `lora_modules`' result (names and ``(A, B)``), or module names alone.

    ``None`` when the names do not tell (other layouts, or too few modules): the shape check
    decides then. SD3.5 and FLUX share most names (``transformer_blocks.N.attn.to_q``): a FLUX
    LoRA is told by its single blocks (upstream's FLUX SwD LoRA targets them), an SD3.5 LoRA by
    ``pos_embed``, ``attn2`` or a joint block FLUX does not have. UNet LoRAs are ``"SDXL"`` or
    ``"SD1.5"`` (SD1.5 or SD2: a family SwD does not run) by their block layout, else by the
    cross-attention's input width, else ``None``.
    """
    pairs = modules if isinstance(modules, dict) else dict.fromkeys(modules)
    names = [module_name(n) for n in pairs]
    shapes = {module_name(n): tuple(ab[0].shape) for n, ab in pairs.items() if ab is not None}
    for family, markers in FAMILY_MARKERS:
        if any(n.startswith(markers) for n in names):
            return _unet_family(names, shapes) if family == "UNet" else family
    if any(".attn2." in n for n in names):
        return "SD3.5"  # MMDiT-X (SD3.5 Medium)
    if any((m := _BLOCK_INDEX.match(n)) and int(m.group(1)) >= FLUX_DOUBLE_BLOCKS for n in names):
        return "SD3.5"
    return None


def module_name(prefix: str) -> str:
    """The transformer module name PEFT's patterns are matched against."""
    for p in MODULE_PREFIXES:
        if prefix.startswith(p):
            return prefix[len(p):]
    return prefix


def _finite_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _rank(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_RANK


def read_adapter_config(path: Path):
    """Validate ``adapter_config.json`` and return PEFT's own ``LoraConfig`` for its scale fields.

    Only the fields that decide PEFT's scale (``r``, ``lora_alpha``, ``use_rslora``,
    ``rank_pattern``, ``alpha_pattern``) reach ``LoraConfig``, each checked first: the file is
    user input, and PEFT's other fields run training-time code (sub-configs, imports).
    """
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SwDError(f"{path.name} is larger than {MAX_CONFIG_BYTES} bytes: not a PEFT adapter config")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad UTF-8 or JSON, ints over 4300 digits
        raise SwDError(f"{path.name} is not readable JSON: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(raw, dict):
        raise SwDError(f"{path.name} must hold a JSON object, got {type(raw).__name__}")
    if raw.get("peft_type", "LORA") != "LORA":
        raise SwDError(f"{path.name} describes a {str(raw.get('peft_type'))[:100]} adapter; only LoRA is supported")
    if raw.get("use_dora"):
        raise SwDError(f"{path.name}: DoRA adapters (use_dora) are not supported; ComfyUI cannot apply PEFT's DoRA")
    # Only the fields present are passed on: PEFT's LoraConfig fills every default itself
    # (lora_alpha 8, r 8, use_rslora false, no patterns), as PeftModel.from_pretrained does.
    fields = {}
    if "r" in raw:
        if not _rank(raw["r"]):
            raise SwDError(f"{path.name}: r must be a whole number in 1..{MAX_RANK}, got {str(raw['r'])[:100]}")
        fields["r"] = raw["r"]
    if "lora_alpha" in raw:
        if not _finite_number(raw["lora_alpha"]):
            raise SwDError(f"{path.name}: lora_alpha must be a finite number, got {str(raw['lora_alpha'])[:100]}")
        fields["lora_alpha"] = raw["lora_alpha"]
    if "use_rslora" in raw:
        if not isinstance(raw["use_rslora"], bool):
            raise SwDError(f"{path.name}: use_rslora must be true or false, got {str(raw['use_rslora'])[:100]}")
        fields["use_rslora"] = raw["use_rslora"]
    for field, valid, want in (
        ("rank_pattern", _rank, f"whole numbers in 1..{MAX_RANK}"),
        ("alpha_pattern", _finite_number, "finite numbers"),
    ):
        if raw.get(field) is None:
            continue
        pattern = raw[field]
        if not isinstance(pattern, dict) or not all(isinstance(k, str) and valid(v) for k, v in pattern.items()):
            raise SwDError(f"{path.name}: {field} must map module names to {want}")
        for key in pattern:
            try:
                re.compile(_pattern_regex(key))
            except (re.error, RecursionError, OverflowError) as e:
                raise SwDError(f"{path.name}: {field} key {key[:100]!r} is not a valid module pattern: {e}") from None
        fields[field] = pattern
    try:
        from peft import LoraConfig
    except ImportError:
        raise SwDError("reading a PEFT adapter_config.json needs the 'peft' package: pip install peft") from None
    return LoraConfig(**fields)


def _pattern_regex(key: str) -> str:
    """PEFT's rule for ``rank_pattern``/``alpha_pattern`` keys: the key matches a module name's
    tail at a ``.`` boundary (``peft.utils.other.get_pattern_key``, PEFT >= 0.14)."""
    return rf"(.*\.)?({key})$"


def pattern_value(pattern: dict, name: str, default):
    """The value ``pattern`` gives module ``name``: the first key (in the file's order) whose
    regex matches the name's tail, else ``default``. PEFT's own rule, without its private helper."""
    for key, value in pattern.items():
        if re.match(_pattern_regex(key), name):
            return value
    return default


def peft_scale(config, name: str) -> tuple[int, float]:
    """PEFT's ``(r, scale)`` for module ``name``, as ``LoraModel`` computes it."""
    r = pattern_value(config.rank_pattern or {}, name, config.r)
    alpha = pattern_value(config.alpha_pattern or {}, name, config.lora_alpha)
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


PEFT_PREFIX = "base_model.model."
HF = "https://huggingface.co"
#: The published SwD LoRAs (PEFT folders on Hugging Face) and the model each fits: family, and for
#: SD3.5 the transformer's width (Large 2432, Medium 1536), read from an attention's lora_A.
PUBLISHED_LORAS = {
    "yresearch/swd-large-6-steps": ("SD3.5", 2432),
    "yresearch/swd-large-4-steps": ("SD3.5", 2432),
    "yresearch/swd-medium-6-steps": ("SD3.5", 1536),
    "yresearch/swd-medium-4-steps": ("SD3.5", 1536),
    "yresearch/swd_flux": ("FLUX", None),
    "yresearch/swd-sdxl": ("SDXL", None),
}


def is_peft_file(state_dict: dict) -> bool:
    """Whether the keys are PEFT's own (``base_model.model.…``), as ``save_pretrained`` writes them."""
    return any(k.startswith(PEFT_PREFIX) for k in state_dict)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower())


def _width(modules) -> int | None:
    for prefix, (a, _) in modules.items():
        if module_name(prefix).endswith("attn.to_q") and a.ndim == 2:
            return int(a.shape[1])
    return None


def published_repos(folder: str, modules) -> list[str]:
    """The Hugging Face repos (`PUBLISHED_LORAS`) a config-less LoRA may come from.

    Args:
        folder: the name of the folder the file lies in (``swd-large-6-steps``, or a download
            folder such as ``models--yresearch--swd_flux``).
        modules: `lora_modules`' result.

    The repo the folder is named after, if one is; else every repo whose model the tensors
    fit (family by `lora_family`, SD3.5 Large or Medium by the attention width); else none.
    """
    slug = _slug(folder)
    named = [r for r in PUBLISHED_LORAS if _slug(r.split("/")[1]) in slug]
    if named:
        return sorted(named, key=lambda r: -len(r))[:1]
    family, width = lora_family(modules), _width(modules)
    return [r for r, (f, w) in PUBLISHED_LORAS.items() if f == family and (w is None or w == width)]


def missing_config_note(name: str, folder: str, modules) -> str:
    """What a PEFT LoRA without ``adapter_config.json`` and alpha keys ran at, and how to change it.

    Scale 1 (``lora_alpha = r``) is what upstream's training code gives by default (its
    ``main.py``: rank 64, ``lora_alpha`` defaults to the rank).
    """
    repos = published_repos(folder, modules)
    source = " or ".join(f"{HF}/{r}" for r in repos) if repos else "the LoRA's download page"
    return (f"no {ADAPTER_CONFIG} beside {name} and no alpha keys: ran at scale 1 (lora_alpha = r, upstream's "
            f"default). For the published scale, put {ADAPTER_CONFIG} from {source} in the file's folder "
            f"(the file named {ADAPTER_WEIGHTS}).")
