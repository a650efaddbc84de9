"""Helpers every stand-in family uses: per-model seeding, seeded random weights, atomic safetensors
writes and byte-stable PEFT LoRA folders."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from pathlib import Path

import torch


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch's CPU RNG for the block, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_safetensors(sd: dict, path: Path, metadata: dict | None = None) -> Path:
    """Write ``sd`` to ``path`` atomically (a partial file is never left under the real name)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.detach().contiguous() for k, v in sd.items()}, str(tmp), metadata=metadata or {"format": "pt"})
    os.replace(tmp, path)
    return path


def fp8_weights(state_dict: dict, prefix: str = "", dtype: torch.dtype = torch.float8_e4m3fn) -> dict:
    """``state_dict`` as plain "fp8" model files store it (community fp8 SDXL checkpoints, Kijai's
    ``flux1-dev-fp8-e4m3fn``): every weight matrix and convolution kernel under ``prefix`` cast to
    ``dtype`` (round to nearest, no scale keys); biases, norms and everything else as they are."""
    return {k: v.to(dtype) if k.startswith(prefix) and v.ndim >= 2 else v for k, v in state_dict.items()}


def random_state_dict(shapes: dict[str, torch.Size], seed: int, dtype: torch.dtype) -> dict:
    """Seeded random tensors, one at a time in key order, cast to ``dtype`` as they are drawn.

    Matrices ~ N(0, 1/fan_in) (activations keep their scale through random layers), norm
    scales 1, biases N(0, 0.02^2). Drawing tensor by tensor keeps the peak at the output size.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = shapes[key]
        if len(shape) >= 2:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif "norm" in key and key.endswith((".weight", ".scale")):
            t = torch.ones(shape)
        else:
            t = torch.randn(shape, generator=g) * 0.02
        out[key] = t.to(dtype)
    return out


def save_peft(peft_model, out_dir: Path) -> Path:
    """Save a PEFT model as a LoRA folder (``adapter_config.json`` + ``adapter_model.safetensors``),
    replacing ``out_dir``, with the same bytes in every process (no model card, no base model name,
    ``target_modules`` sorted)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    peft_model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # PEFT's boilerplate model card
    cfg_path = out_dir / "adapter_config.json"
    conf = json.loads(cfg_path.read_text())
    conf["base_model_name_or_path"] = None
    if isinstance(conf.get("target_modules"), list):  # PEFT writes a set: order varies per process
        conf["target_modules"] = sorted(conf["target_modules"])
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    return out_dir
