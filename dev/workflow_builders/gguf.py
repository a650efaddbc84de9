"""The FLUX.1-dev GGUF workflow: city96's ComfyUI-GGUF ``Unet Loader (GGUF)`` + SwD LoRA Loader + FluxGuidance 4.5.

The fp8 FLUX graph (``flux.build``) with its ``UNETLoader`` replaced by ``UnetLoaderGGUF`` (same node id and
links) and its note rewritten for the GGUF files.
"""
from __future__ import annotations

from .common import HF, by_type, lora_files, model_files, set_note, set_prefix
from .flux import FLUX_FILES, FLUX_GUIDANCE, FLUX_PRESET, FLUX_TE, build
from .graph import PACK_ID, Graph

GGUF_PACK = "comfyui-gguf"  # ComfyUI-GGUF's Comfy Registry id (its pyproject's name)
GGUF_FILE = "flux1-dev-Q8_0.gguf"
GGUF_URL = f"{HF}/city96/FLUX.1-dev-gguf/resolve/main/{GGUF_FILE}"


def gguf_note() -> str:
    t5 = FLUX_FILES["fp8"][2]
    rows = [
        (f"`{GGUF_FILE}` (or another quantisation)", "`ComfyUI/models/diffusion_models/` (or `unet/`)",
         f"[city96/FLUX.1-dev-gguf]({HF}/city96/FLUX.1-dev-gguf)"),
        (f"`clip_l.safetensors`, `{t5}`", "`ComfyUI/models/text_encoders/`",
         f"[comfyanonymous/flux_text_encoders]({FLUX_TE.removesuffix('/resolve/main')})"),
        ("`ae.safetensors`", "`ComfyUI/models/vae/`",
         f"[black-forest-labs/FLUX.1-dev]({HF}/black-forest-labs/FLUX.1-dev)"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", "`ComfyUI/models/loras/swd_flux/`",
         f"[yresearch/swd_flux]({HF}/yresearch/swd_flux)"),
    ]
    table = model_files(rows)
    return f"""## SwD: FLUX.1-dev GGUF, 4 steps

Scale-wise distillation on a quantised FLUX.1-dev. Needs the **{PACK_ID}** node pack and
**ComfyUI-GGUF** (city96; `{GGUF_PACK}` in the Manager) for **Unet Loader (GGUF)**.

### Model files (download, then put them here)

{table}

{lora_files("yresearch/swd_flux", "swd_flux")}

Q8_0 is closest to the full model; Q5/Q4 files are smaller and drift further from it. ComfyUI-GGUF applies
the SwD LoRA on the fly to the dequantised weights, at PEFT's scale (SwD LoRA Loader).

### Settings
* **FluxGuidance {FLUX_GUIDANCE}**: the LoRA was distilled with FLUX's embedded guidance at {FLUX_GUIDANCE}.
* **SwD Schedule** preset `{FLUX_PRESET}`; SwD Sampler cfg **1.0**.
* Not with TeaCache, MagCache, WaveSpeed's First Block Cache, EasyCache/LazyCache: SwD refuses them
  (they cannot follow a latent that grows every step).
"""


def build_flux_gguf(name: str) -> Graph:
    g = build(name, "fp8")
    loader = by_type(g)["UNETLoader"]
    loader.update(type="UnetLoaderGGUF", title="Unet Loader (GGUF): FLUX.1-dev", widgets_values=[GGUF_FILE])
    loader["properties"] = {"cnr_id": GGUF_PACK, "Node name for S&R": "UnetLoaderGGUF",
                            "models": [{"name": GGUF_FILE, "url": GGUF_URL, "directory": "diffusion_models"}]}
    set_note(g, gguf_note())
    set_prefix(g, f"swd/{name.removeprefix('swd-')}")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-flux1-dev-gguf": build_flux_gguf("swd-flux1-dev-gguf")}
