"""Every path the tooling uses, and every stand-in file name: the one place they are written."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "dev"
HOST = ROOT / ".host"
VENV = ROOT / ".venv"
#: ``swd_core`` alone, importable without the pack (a link written by setup; on sys.path beside ``dev/``).
PYLIB = HOST / "pylib"
MODELS = HOST / "models"
EXTRA_PATHS = HOST / "extra_model_paths.yaml"
PACK_DIR_NAME = "swd-scalewise"  # the folder name ComfyUI sees for this pack
PACK_LINK = HOST / "custom_nodes" / PACK_DIR_NAME
WORKFLOWS = ROOT / "workflows"
ARTIFACTS = ROOT / "test-artifacts"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def comfyui_path() -> Path:
    """The ComfyUI checkout in use: ``COMFYUI_PATH``, else the one setup installs in ``.host``."""
    env = os.environ.get("COMFYUI_PATH")
    return Path(env).resolve() if env else HOST / "ComfyUI"


COMFYUI = comfyui_path()

# Stand-in files inside MODELS (ComfyUI's model-folder layout). The names are a contract of the
# tests, the demo, the soak and the benchmarks.
SD3_DIFFUSERS_DIR = "diffusers/sd35-standin"
SD3_TRANSFORMER_DIR = f"{SD3_DIFFUSERS_DIR}/transformer"
SD3_VAE_DIR = f"{SD3_DIFFUSERS_DIR}/vae"
SD3_DIFFUSION_MODEL = "swd-standin-sd35-transformer.safetensors"  # in diffusion_models/
SD3_VAE = "swd-standin-sd35-vae.safetensors"  # in vae/
SD3_CHECKPOINT = "swd-standin-sd35.safetensors"  # in checkpoints/
CLIP_L = "swd-standin-clip_l.safetensors"  # in text_encoders/
SD3_LORA_DIR = "swd-standin-lora"  # in loras/
SD3_LORA = f"{SD3_LORA_DIR}/adapter_model.safetensors"  # the name SwDLoraLoader lists
SD3_CONTROLNET = "swd-standin-sd35-controlnet.safetensors"  # in controlnet/
SD35_CONTROLNET = "swd-standin-sd35-controlnet-stability.safetensors"  # in controlnet/ (Stability's layout)
FLUX_DIFFUSION_MODEL = "swd-standin-flux1-dev.safetensors"  # in diffusion_models/
FLUX_VAE = "swd-standin-flux-ae.safetensors"  # in vae/
FLUX_LORA_DIR = "swd-standin-flux-lora"  # in loras/
FLUX_LORA = f"{FLUX_LORA_DIR}/adapter_model.safetensors"
FLUX_GGUF = "swd-standin-flux1-dev-Q8_0.gguf"  # in diffusion_models/ (harness.standins.gguf_files; Q4_0 too)
FLUX_CONTROLNET_INSTANTX = "swd-standin-flux-controlnet-instantx.safetensors"  # in controlnet/ (diffusers layout)
FLUX_CONTROLNET_XLABS = "swd-standin-flux-controlnet-xlabs.safetensors"  # in controlnet/ (XLabs layout)
SDXL_CHECKPOINT = "swd-standin-sdxl.safetensors"  # in checkpoints/
SDXL_CONTROLNET = "swd-standin-sdxl-controlnet.safetensors"  # in controlnet/
SDXL_LORA_DIR = "swd-standin-sdxl-lora"  # in loras/
SDXL_LORA = f"{SDXL_LORA_DIR}/adapter_model.safetensors"
# SDXL split files, cut from the SDXL checkpoint stand-in (its CLIP-L is the CLIP_L file above)
SDXL_DIFFUSION_MODEL = "swd-standin-sdxl-unet.safetensors"  # in diffusion_models/
SDXL_CLIP_G = "swd-standin-clip_g.safetensors"  # in text_encoders/
SDXL_VAE = "swd-standin-sdxl-vae.safetensors"  # in vae/


def comfyui_version(comfyui: Path | None = None) -> str:
    """The version of a ComfyUI checkout (its ``comfyui_version.py``), e.g. ``"0.33.0"``."""
    import re

    text = (Path(comfyui or COMFYUI) / "comfyui_version.py").read_text(encoding="utf-8")
    return re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)


def comfyui_version_info(comfyui: Path | None = None) -> tuple[int, ...]:
    """`comfyui_version` as numbers, e.g. ``(0, 33, 0)``, for comparisons in tests."""
    return tuple(int(x) for x in comfyui_version(comfyui).split(".")[:3] if x.isdigit())
