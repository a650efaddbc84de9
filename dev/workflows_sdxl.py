"""The SDXL workflow (``make_workflows`` writes it; shared settings live there)."""
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

SDXL_PRESET = "SDXL, 4 steps"
SDXL_LORA = "swd-sdxl/adapter_model.safetensors"
SDXL_LORA_REPO = "yresearch/swd-sdxl"
SDXL_CHECKPOINT = ("sd_xl_base_1.0.safetensors",
                   f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors")


def sdxl_note() -> str:
    rows = [
        (f"`{SDXL_CHECKPOINT[0]}`", "`ComfyUI/models/checkpoints/`", f"[file]({SDXL_CHECKPOINT[1]})"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", "`ComfyUI/models/loras/swd-sdxl/`",
         f"[{SDXL_LORA_REPO}]({HF}/{SDXL_LORA_REPO})"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""## SwD: SDXL, 4 steps

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it.
Needs the **{PACK_ID}** node pack.

### Model files (download, then put them here)

| file | folder | from |
|---|---|---|
{table}

Keep the LoRA's two files together in `loras/swd-sdxl/`, then pick `{SDXL_LORA}` in
**SwD LoRA Loader**. The published SDXL checkpoint was trained with the MMD loss only.

### Settings
* **SwD Schedule** preset `{SDXL_PRESET}` (upstream's DDPM times 1.0, 0.8, 0.6, 0.4 as t/1000);
  SwD Sampler cfg **1.0** (one model call per step).
* **Empty Latent Image** sets the FINAL size (1024x1024 here); the first step runs at half of it.

### SDXL finetunes
An SDXL finetune (same architecture) can replace the base checkpoint: the LoRA loads onto it
with the same checks. The LoRA was distilled on SDXL base 1.0, so picture quality on a
finetune is not promised; v-prediction finetunes differ the most.
"""


def build_sdxl(name: str, conditioning=None) -> Graph:
    """Checkpoint -> SwD LoRA Loader -> SwD Sampler (4 steps). ``conditioning(g, pos, neg)``, if given, adds
    nodes between the prompts and the sampler and returns the sampler's ``(positive, negative)`` as
    ``(node, output)`` pairs."""
    g = Graph(name)
    lora_url = f"{HF}/{SDXL_LORA_REPO}/resolve/main/adapter_model.safetensors"
    g.node("MarkdownNote", "Model files", (-520, 0), (480, 640), [sdxl_note()], color=("#432", "#653"))
    loader = g.node("CheckpointLoaderSimple", "Load SDXL base", (0, 0), (380, 98), [SDXL_CHECKPOINT[0]],
                    models=[(SDXL_CHECKPOINT[0], SDXL_CHECKPOINT[1], "checkpoints")])
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (0, 150), (380, 82), [SDXL_LORA, 1.0],
                      models=[(SDXL_LORA, lora_url, "loras")])
    schedule = g.node("SwDSchedule", "SwD Schedule", (0, 280), (380, 106), [SDXL_PRESET, CUSTOM_SCALES, CUSTOM_SIGMAS])
    pos = g.node("CLIPTextEncode", "Positive Prompt", (430, 0), (420, 200), [PROMPT], color=("#232", "#353"))
    neg = g.node("CLIPTextEncode", "Negative Prompt (unused at cfg 1)", (430, 250), (420, 120), [NEGATIVE],
                 color=("#322", "#533"))
    latent = g.node("EmptyLatentImage", "Empty Latent Image (final size)", (430, 420), (320, 106),
                    [RESOLUTION, RESOLUTION, 1])
    g.link(loader, "MODEL", swd_lora, "model")
    for enc in (pos, neg):
        g.link(loader, "CLIP", enc, "clip")
    positive, negative = (pos, "CONDITIONING"), (neg, "CONDITIONING")
    if conditioning is not None:
        positive, negative = conditioning(g, pos, neg)
    sample_and_save(g, name, (swd_lora, "MODEL"), positive, negative, (latent, "LATENT"), schedule, (loader, "VAE"))
    return g


#: SDXL base as people usually run it: 30 steps, cfg 7, euler / normal (ComfyUI's SDXL example uses
#: euler / normal at cfg 8 and 20-25 steps).
BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER = 30, 7.0, "euler", "normal"


def build_sdxl_vs_base(name: str) -> Graph:
    """SwD SDXL (LoRA + SwD Sampler, 4 steps) beside SDXL base alone (KSampler, 30 steps, cfg 7)."""
    g = build_sdxl(name)
    by_type = {n["type"]: n for n in g.nodes}
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    neg["title"] = "Negative Prompt (base run only)"
    loader = by_type["CheckpointLoaderSimple"]
    add_base_run(g, f"Base SDXL: {BASE_STEPS} steps, cfg {BASE_CFG:g}",
                 [SEED, "fixed", BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER, 1.0], (loader, "MODEL"),
                 pos, neg, by_type["EmptyLatentImage"], (loader, "VAE"), f"Base model ({BASE_STEPS} steps)",
                 f"swd/sdxl-base-{BASE_STEPS}-steps")
    by_type["SaveImage"]["title"] = "SwD (4 steps)"
    by_type["SaveImage"]["widgets_values"][0] = "swd/sdxl-4-steps-vs-base"
    by_type["MarkdownNote"]["widgets_values"][0] += (
        f"\n### The comparison\nThe same prompt, seed ({SEED}) and size through SDXL base alone: stock "
        f"**KSampler**, {BASE_STEPS} steps, cfg {BASE_CFG:g}, {BASE_SAMPLER} / {BASE_SCHEDULER} (the negative "
        "prompt is used there). The two images are not the same picture (different samplers draw different "
        "noise): compare quality and time (the queue shows each node's time).\n")
    return g


#: diffusers' SDXL canny ControlNet, in its own folder under ``models/controlnet/`` (its file name is generic);
#: ComfyUI's ControlNetLoader reads the diffusers layout and detects SDXL from it.
CONTROLNET_REPO = "diffusers/controlnet-canny-sdxl-1.0"
CONTROLNET = ("controlnet-canny-sdxl-1.0/diffusion_pytorch_model.fp16.safetensors",
              f"{HF}/{CONTROLNET_REPO}/resolve/main/diffusion_pytorch_model.fp16.safetensors")


def build_sdxl_controlnet(name: str) -> Graph:
    """SwD SDXL with a canny ControlNet: Load Image (``example.png``) -> Canny -> Apply ControlNet
    (``ControlNetApplyAdvanced``, no VAE: SDXL ControlNets take the pixel hint) <- Load ControlNet Model."""
    import workflows_controlnet as cn  # here: it imports make_workflows

    def controlnet(g: Graph, pos: dict, neg: dict):
        apply = cn.add_canny_controlnet(g, pos, neg, "Load ControlNet Model (SDXL canny)", CONTROLNET)
        return (apply, "positive"), (apply, "negative")

    g = build_sdxl(name, controlnet)
    note = next(n for n in g.nodes if n["type"] == "MarkdownNote")
    note["widgets_values"][0] = note["widgets_values"][0].replace(
        "## SwD: SDXL, 4 steps", "## SwD: SDXL, 4 steps: ControlNet", 1) + (
        "\n### ControlNet (canny)\n| file | folder | from |\n|---|---|---|\n"
        f"| `{CONTROLNET[0].split('/')[-1]}` | `ComfyUI/models/controlnet/{CONTROLNET[0].split('/')[0]}/` | "
        f"[{CONTROLNET_REPO}]({HF}/{CONTROLNET_REPO}) ([file]({CONTROLNET[1]})) |\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** (no VAE: SDXL ControlNets take the image itself). "
        "Any SDXL ControlNet that ComfyUI's **Load ControlNet Model** reads works the same way (other "
        "preprocessors for depth, pose...).\n\n"
        "**Across scales**: ComfyUI resizes the hint image to the latent's size whenever it changes, so each "
        "of SwD's 4 scales gets the hint at its own size (no VAE encode for SDXL ControlNets).\n"
        "The ControlNet was trained with SDXL base at cfg above 1; with the SwD LoRA at cfg 1 it is untested on "
        "the real weights here: lower the strength if the image degrades.\n")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-sdxl-4-steps": build_sdxl("swd-sdxl-4-steps"),
            "swd-sdxl-4-steps-vs-base": build_sdxl_vs_base("swd-sdxl-4-steps-vs-base"),
            "swd-sdxl-4-steps-controlnet": build_sdxl_controlnet("swd-sdxl-4-steps-controlnet")}
