"""The FLUX.1-dev workflows (``make_workflows`` writes them; shared settings live there)."""
from __future__ import annotations

from make_workflows import (
    CUSTOM_SCALES,
    CUSTOM_SIGMAS,
    HF,
    NEGATIVE,
    PROMPT,
    RESOLUTION,
    SEED,
    add_base_run,
    sample_and_save,
)
from workflow_graph import PACK_ID, Graph

FLUX_GUIDANCE = 4.5  # what yresearch/swd_flux was distilled with
FLUX_PRESET = "FLUX.1-dev, 4 steps"
FLUX_LORA = "swd_flux/adapter_model.safetensors"
FLUX_FILES = {  # variant -> (unet file, weight_dtype, t5 file, unet url)
    "bf16": ("flux1-dev.safetensors", "default", "t5xxl_fp16.safetensors",
             f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors"),
    "fp8": ("flux1-dev-fp8-e4m3fn.safetensors", "fp8_e4m3fn", "t5xxl_fp8_e4m3fn.safetensors",
            f"{HF}/Kijai/flux-fp8/resolve/main/flux1-dev-fp8-e4m3fn.safetensors"),
}
FLUX_TE = f"{HF}/comfyanonymous/flux_text_encoders/resolve/main"
FLUX_VAE = ("ae.safetensors", f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors")


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
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    fp8 = (f"\n**fp8**: the transformer runs in `{dtype}` (UNETLoader's weight_dtype) and T5-XXL is the fp8 "
           f"file: about half the memory of the bf16 workflow.\n" if variant == "fp8" else "")
    return f"""## SwD: FLUX.1-dev, 4 steps

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it.
Needs the **{PACK_ID}** node pack.
{fp8}
### Model files (download, then put them here)

| file | folder | from |
|---|---|---|
{table}

FLUX.1-dev is gated: accept its license on Hugging Face first. Keep the LoRA's two files
together in `loras/swd_flux/`, then pick `{FLUX_LORA}` in **SwD LoRA Loader**.

### Settings
* **FluxGuidance {FLUX_GUIDANCE}**: the LoRA was distilled with FLUX's embedded guidance at
  {FLUX_GUIDANCE}; without FluxGuidance ComfyUI uses 3.5 (the sampler warns on the node).
* **SwD Schedule** preset `{FLUX_PRESET}`; SwD Sampler cfg **1.0**.
"""


def build_flux(name: str, variant: str) -> Graph:
    g = Graph(name)
    unet, dtype, t5, unet_url = FLUX_FILES[variant]
    lora_url = f"{HF}/yresearch/swd_flux/resolve/main/adapter_model.safetensors"
    g.node("MarkdownNote", "Model files", (-520, 0), (480, 700), [flux_note(variant)], color=("#432", "#653"))
    loader = g.node("UNETLoader", "Load FLUX.1-dev", (0, 0), (380, 82), [unet, dtype],
                    models=[(unet, unet_url, "diffusion_models")])
    clip = g.node("DualCLIPLoader", "FLUX text encoders", (0, 130), (380, 130), ["clip_l.safetensors", t5, "flux",
                                                                                  "default"],
                  models=[(n, f"{FLUX_TE}/{n}", "text_encoders") for n in ("clip_l.safetensors", t5)])
    vae = g.node("VAELoader", "Load FLUX VAE", (0, 310), (380, 58), [FLUX_VAE[0]],
                 models=[(FLUX_VAE[0], FLUX_VAE[1], "vae")])
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (0, 420), (380, 82), [FLUX_LORA, 1.0],
                      models=[(FLUX_LORA, lora_url, "loras")])
    schedule = g.node("SwDSchedule", "SwD Schedule", (0, 550), (380, 106), [FLUX_PRESET, CUSTOM_SCALES, CUSTOM_SIGMAS])
    pos = g.node("CLIPTextEncode", "Positive Prompt", (430, 0), (420, 200), [PROMPT], color=("#232", "#353"))
    guidance = g.node("FluxGuidance", "FluxGuidance", (430, 250), (320, 58), [FLUX_GUIDANCE])
    neg = g.node("CLIPTextEncode", "Negative Prompt (unused at cfg 1)", (430, 350), (420, 120), [NEGATIVE],
                 color=("#322", "#533"))
    latent = g.node("EmptySD3LatentImage", "Empty Latent Image (16 channels)", (430, 520), (320, 106),
                    [RESOLUTION, RESOLUTION, 1])
    g.link(loader, "MODEL", swd_lora, "model")
    for enc in (pos, neg):
        g.link(clip, "CLIP", enc, "clip")
    g.link(pos, "CONDITIONING", guidance, "conditioning")
    sample_and_save(g, name, (swd_lora, "MODEL"), (guidance, "CONDITIONING"), (neg, "CONDITIONING"),
                    (latent, "LATENT"), schedule, (vae, "VAE"))
    return g


#: FLUX.1-dev as people usually run it: 30 steps (the SwD paper's FLUX baseline), euler / simple, cfg 1 and
#: FluxGuidance 3.5 (ComfyUI's FLUX.1-dev example and Black Forest Labs' default).
BASE_STEPS, BASE_GUIDANCE = 30, 3.5


def build_flux_vs_base(name: str) -> Graph:
    """SwD FLUX (LoRA + SwD Sampler, 4 steps, guidance 4.5) beside FLUX.1-dev alone (KSampler, 30 steps, 3.5)."""
    g = build_flux(name, "bf16")
    by_type = {n["type"]: n for n in g.nodes}
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    base_guidance = g.node("FluxGuidance", f"FluxGuidance (base: {BASE_GUIDANCE:g})", (430, 660), (320, 58),
                           [BASE_GUIDANCE])
    g.link(pos, "CONDITIONING", base_guidance, "conditioning")
    add_base_run(g, f"Base FLUX.1-dev: {BASE_STEPS} steps, guidance {BASE_GUIDANCE:g}",
                 [SEED, "fixed", BASE_STEPS, 1.0, "euler", "simple", 1.0], (by_type["UNETLoader"], "MODEL"),
                 base_guidance, neg, by_type["EmptySD3LatentImage"], (by_type["VAELoader"], "VAE"),
                 f"Base model ({BASE_STEPS} steps)", f"swd/flux1-dev-base-{BASE_STEPS}-steps")
    by_type["SaveImage"]["title"] = "SwD (4 steps)"
    by_type["SaveImage"]["widgets_values"][0] = "swd/flux1-dev-4-steps-vs-base"
    by_type["MarkdownNote"]["widgets_values"][0] += (
        f"\n### The comparison\nThe same prompt, seed ({SEED}) and size through FLUX.1-dev alone: stock "
        f"**KSampler**, {BASE_STEPS} steps, euler / simple, cfg 1, FluxGuidance {BASE_GUIDANCE:g} (FLUX.1-dev's "
        "usual setting; the SwD LoRA was distilled at 4.5). The two images are not the same picture "
        "(different samplers draw different noise): compare quality and time.\n")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-flux1-dev-4-steps": build_flux("swd-flux1-dev-4-steps", "bf16"),
            "swd-flux1-dev-4-steps-fp8": build_flux("swd-flux1-dev-4-steps-fp8", "fp8"),
            "swd-flux1-dev-4-steps-vs-base": build_flux_vs_base("swd-flux1-dev-4-steps-vs-base")}


