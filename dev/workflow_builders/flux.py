"""The FLUX.1-dev workflows: 4 steps in bf16 and in fp8, and beside FLUX.1-dev alone."""
from __future__ import annotations

from .common import (
    COL_A,
    COL_B,
    HF,
    SEED,
    WIDTH_A,
    Family,
    add_base_run,
    build_txt2img,
    by_type,
    comparison_text,
    lora_files,
    model_files,
    prompts,
    set_prefix,
)
from .graph import PACK_ID, Graph

FLUX_GUIDANCE = 4.5  # what yresearch/swd_flux was distilled with
FLUX_PRESET = "FLUX.1-dev, 4 steps"
FLUX_LORA = "swd_flux/adapter_model.safetensors"
FLUX_LORA_URL = f"{HF}/yresearch/swd_flux/resolve/main/adapter_model.safetensors"
FLUX_FILES = {  # variant -> (unet file, weight_dtype, t5 file, unet url)
    "bf16": ("flux1-dev.safetensors", "default", "t5xxl_fp16.safetensors",
             f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors"),
    "fp8": ("flux1-dev-fp8-e4m3fn.safetensors", "fp8_e4m3fn", "t5xxl_fp8_e4m3fn.safetensors",
            f"{HF}/Kijai/flux-fp8/resolve/main/flux1-dev-fp8-e4m3fn.safetensors"),
}
FLUX_TE = f"{HF}/comfyanonymous/flux_text_encoders/resolve/main"
FLUX_VAE = ("ae.safetensors", f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors")
HEADING = "## SwD: FLUX.1-dev, 4 steps"

#: FLUX.1-dev as people usually run it: 30 steps (the SwD paper's FLUX baseline), euler / simple, cfg 1 and
#: FluxGuidance 3.5 (ComfyUI's FLUX.1-dev example and Black Forest Labs' default).
BASE_STEPS, BASE_GUIDANCE = 30, 3.5


def flux_note(variant: str) -> str:
    unet, dtype, t5, unet_url = FLUX_FILES[variant]
    rows = [
        (f"`{unet}`", "`ComfyUI/models/diffusion_models/`", f"[file]({unet_url})"),
        (f"`clip_l.safetensors`, `{t5}`", "`ComfyUI/models/text_encoders/`",
         f"[comfyanonymous/flux_text_encoders]({HF}/comfyanonymous/flux_text_encoders)"),
        ("`ae.safetensors`", "`ComfyUI/models/vae/`",
         f"[black-forest-labs/FLUX.1-dev]({HF}/black-forest-labs/FLUX.1-dev)"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", "`ComfyUI/models/loras/swd_flux/`",
         f"[yresearch/swd_flux]({HF}/yresearch/swd_flux)"),
    ]
    table = model_files(rows)
    fp8 = (f"\n**fp8**: the transformer runs in `{dtype}` (UNETLoader's weight_dtype) and T5-XXL is the fp8 "
           f"file: about half the memory of the bf16 workflow.\n" if variant == "fp8" else "")
    return f"""{HEADING}

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it.
Needs the **{PACK_ID}** node pack.
{fp8}
### Model files (download, then put them here)

{table}

FLUX.1-dev is gated: accept its license on Hugging Face first.

{lora_files("yresearch/swd_flux", "swd_flux")}

### Settings
* **FluxGuidance {FLUX_GUIDANCE}**: the LoRA was distilled with FLUX's embedded guidance at
  {FLUX_GUIDANCE}; without FluxGuidance ComfyUI uses 3.5 (the sampler warns on the node).
* **SwD Schedule** preset `{FLUX_PRESET}`; SwD Sampler cfg **1.0**.
"""


def family(variant: str) -> Family:
    unet, dtype, t5, unet_url = FLUX_FILES[variant]

    def loaders(g: Graph):
        loader = g.node("UNETLoader", "Load FLUX.1-dev", (COL_A, 0), (WIDTH_A, 82), [unet, dtype],
                        models=[(unet, unet_url, "diffusion_models")])
        clip = g.node("DualCLIPLoader", "FLUX text encoders", (COL_A, 130), (WIDTH_A, 130),
                      ["clip_l.safetensors", t5, "flux", "default"],
                      models=[(n, f"{FLUX_TE}/{n}", "text_encoders") for n in ("clip_l.safetensors", t5)])
        vae = g.node("VAELoader", "Load FLUX VAE", (COL_A, 310), (WIDTH_A, 58), [FLUX_VAE[0]],
                     models=[(FLUX_VAE[0], FLUX_VAE[1], "vae")])
        return (loader, "MODEL"), (clip, "CLIP"), (vae, "VAE")

    return Family(note=flux_note(variant), loaders=loaders, lora_y=420,
                  lora=(FLUX_LORA, FLUX_LORA_URL), preset=FLUX_PRESET,
                  latent=("EmptySD3LatentImage", "Empty Latent Image (16 channels)"), guidance=FLUX_GUIDANCE)


def build(name: str, variant: str = "bf16", conditioning=None) -> Graph:
    return build_txt2img(name, family(variant), conditioning)


def build_vs_base(name: str) -> Graph:
    """SwD FLUX (LoRA + SwD Sampler, 4 steps, guidance 4.5) beside FLUX.1-dev alone (KSampler, 30 steps, 3.5)."""
    g = build(name)
    nodes = by_type(g)
    pos, neg = prompts(g)
    base_guidance = g.node("FluxGuidance", f"FluxGuidance (base: {BASE_GUIDANCE:g})", (COL_B, 690), (320, 58),
                           [BASE_GUIDANCE])
    g.link(pos, "CONDITIONING", base_guidance, "conditioning")
    add_base_run(g, f"Base FLUX.1-dev: {BASE_STEPS} steps, guidance {BASE_GUIDANCE:g}",
                 [SEED, "fixed", BASE_STEPS, 1.0, "euler", "simple", 1.0], (nodes["UNETLoader"], "MODEL"),
                 base_guidance, neg, nodes["EmptySD3LatentImage"], (nodes["VAELoader"], "VAE"),
                 f"Base model ({BASE_STEPS} steps)", f"swd/flux1-dev-base-{BASE_STEPS}-steps")
    nodes["SaveImage"]["title"] = "SwD (4 steps)"
    set_prefix(g, "swd/flux1-dev-4-steps-vs-base")
    nodes["MarkdownNote"]["widgets_values"][0] += comparison_text(
        "FLUX.1-dev alone", f"{BASE_STEPS} steps, euler / simple, cfg 1, FluxGuidance {BASE_GUIDANCE:g} (FLUX.1-dev's "
        "usual setting; the SwD LoRA was distilled at 4.5)")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-flux1-dev-4-steps": build("swd-flux1-dev-4-steps", "bf16"),
            "swd-flux1-dev-4-steps-fp8": build("swd-flux1-dev-4-steps-fp8", "fp8"),
            "swd-flux1-dev-4-steps-vs-base": build_vs_base("swd-flux1-dev-4-steps-vs-base")}
