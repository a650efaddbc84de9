"""Helpers every stand-in family uses: per-model seeding and atomic safetensors writes."""
from __future__ import annotations

import contextlib
import os
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
