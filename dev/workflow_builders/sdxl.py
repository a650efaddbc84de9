"""The SDXL workflows: 4 steps, and beside SDXL base alone (the ControlNet one is in ``controlnet``)."""
from __future__ import annotations

from .common import (
    COL_A,
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

SDXL_PRESET = "SDXL, 4 steps"
SDXL_LORA = "swd-sdxl/adapter_model.safetensors"
SDXL_LORA_REPO = "yresearch/swd-sdxl"
SDXL_CHECKPOINT = ("sd_xl_base_1.0.safetensors",
                   f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors")
HEADING = "## SwD: SDXL, 4 steps"

#: SDXL base as people usually run it: 30 steps, cfg 7, euler / normal (ComfyUI's SDXL example uses
#: euler / normal at cfg 8 and 20-25 steps).
BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER = 30, 7.0, "euler", "normal"


def sdxl_note() -> str:
    rows = [
        (f"`{SDXL_CHECKPOINT[0]}`", "`ComfyUI/models/checkpoints/`", f"[file]({SDXL_CHECKPOINT[1]})"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", "`ComfyUI/models/loras/swd-sdxl/`",
         f"[{SDXL_LORA_REPO}]({HF}/{SDXL_LORA_REPO})"),
    ]
    table = model_files(rows)
    return f"""{HEADING}

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it.
Needs the **{PACK_ID}** node pack.

### Model files (download, then put them here)

{table}

{lora_files(SDXL_LORA_REPO, "swd-sdxl")}

The published SDXL LoRA was trained with the MMD loss only.

### Settings
* **SwD Schedule** preset `{SDXL_PRESET}` (upstream's DDPM times 1.0, 0.8, 0.6, 0.4 as t/1000);
  SwD Sampler cfg **1.0** (one model call per step).
* **Empty Latent Image** sets the FINAL size (1024x1024 here); the first step runs at half of it.

### SDXL finetunes
An SDXL finetune (same architecture) can replace the base checkpoint: the LoRA loads onto it
with the same checks. The LoRA was distilled on SDXL base 1.0, so picture quality on a
finetune is not promised; v-prediction finetunes differ the most.
"""


def family() -> Family:
    def loaders(g: Graph):
        loader = g.node("CheckpointLoaderSimple", "Load SDXL base", (COL_A, 0), (WIDTH_A, 98), [SDXL_CHECKPOINT[0]],
                        models=[(SDXL_CHECKPOINT[0], SDXL_CHECKPOINT[1], "checkpoints")])
        return (loader, "MODEL"), (loader, "CLIP"), (loader, "VAE")

    return Family(note=sdxl_note(), loaders=loaders, lora_y=150,
                  lora=(SDXL_LORA, f"{HF}/{SDXL_LORA_REPO}/resolve/main/adapter_model.safetensors"),
                  preset=SDXL_PRESET, latent=("EmptyLatentImage", "Empty Latent Image (final size)"))


def build(name: str, conditioning=None) -> Graph:
    """Checkpoint -> SwD LoRA Loader -> SwD Sampler (4 steps); ``conditioning`` as in ``build_txt2img``."""
    return build_txt2img(name, family(), conditioning)


def build_vs_base(name: str) -> Graph:
    """SwD SDXL (LoRA + SwD Sampler, 4 steps) beside SDXL base alone (KSampler, 30 steps, cfg 7)."""
    g = build(name)
    nodes = by_type(g)
    pos, neg = prompts(g)
    neg["title"] = "Negative Prompt (base run only)"
    loader = nodes["CheckpointLoaderSimple"]
    add_base_run(g, f"Base SDXL: {BASE_STEPS} steps, cfg {BASE_CFG:g}",
                 [SEED, "fixed", BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER, 1.0], (loader, "MODEL"),
                 pos, neg, nodes["EmptyLatentImage"], (loader, "VAE"), f"Base model ({BASE_STEPS} steps)",
                 f"swd/sdxl-base-{BASE_STEPS}-steps")
    nodes["SaveImage"]["title"] = "SwD (4 steps)"
    set_prefix(g, "swd/sdxl-4-steps-vs-base")
    nodes["MarkdownNote"]["widgets_values"][0] += comparison_text(
        "SDXL base alone", f"{BASE_STEPS} steps, cfg {BASE_CFG:g}, {BASE_SAMPLER} / {BASE_SCHEDULER} (the negative "
        "prompt is used there)", " (the queue shows each node's time)")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-sdxl-4-steps": build("swd-sdxl-4-steps"),
            "swd-sdxl-4-steps-vs-base": build_vs_base("swd-sdxl-4-steps-vs-base")}
