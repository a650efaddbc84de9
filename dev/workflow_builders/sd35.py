"""The SD3.5 workflows (Large and Medium, the published SwD LoRAs and their schedules), and the Large 6-step
variants: image-to-image, SamplerCustomAdvanced, split files, LoRA merge, beside the base model."""
from __future__ import annotations

from .common import (
    COL_A,
    COL_B,
    COL_C,
    HF,
    IMAGE,
    MESSAGE_ROOM,
    NOTE_COLOR,
    NOTE_SIZE,
    NOTE_X,
    RESOLUTION,
    SEED,
    WIDTH_A,
    WIDTH_B,
    WIDTH_C,
    Family,
    add_base_run,
    build_txt2img,
    by_type,
    comparison_text,
    lora_files,
    model_files,
    prompts,
    retitle_note,
    set_note,
    set_prefix,
)
from .graph import PACK_ID, Graph, remove_node, renumber_links

TEXT_ENCODERS = [  # (file, url): the SD3.5 text encoders, shared by Large and Medium
    (name, f"{HF}/stabilityai/stable-diffusion-3.5-large/resolve/main/text_encoders/{name}")
    for name in ("clip_g.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors")
]
CHECKPOINTS = {
    "large": ("sd3.5_large.safetensors",
              f"{HF}/stabilityai/stable-diffusion-3.5-large/resolve/main/sd3.5_large.safetensors"),
    "medium": ("sd3.5_medium.safetensors",
               f"{HF}/stabilityai/stable-diffusion-3.5-medium/resolve/main/sd3.5_medium.safetensors"),
}
PRESETS = [  # (file stem, model, steps): the published SD3.5 SwD LoRAs and their schedules
    ("swd-sd3.5-large-6-steps", "large", 6),
    ("swd-sd3.5-large-4-steps", "large", 4),
    ("swd-sd3.5-medium-6-steps", "medium", 6),
    ("swd-sd3.5-medium-4-steps", "medium", 4),
]
IMG2IMG_DENOISE = 0.8
HEADING = "## SwD: SD3.5 Large, 6 steps"

SD3_VAE = ("diffusion_pytorch_model.safetensors",
           f"{HF}/stabilityai/stable-diffusion-3.5-large/resolve/main/vae/diffusion_pytorch_model.safetensors")
BASE_STEPS, BASE_CFG = 28, 4.5  # SD3.5 Large's usual settings (Stability's model card / ComfyUI examples)
BASE_SAMPLER, BASE_SCHEDULER = "euler", "sgm_uniform"
MERGED_PREFIX = "checkpoints/sd3.5_large_swd_6_steps"


def preset_name(model: str, steps: int) -> str:
    return f"SD3.5 {model.capitalize()}, {steps} steps"


def lora_folder(model: str, steps: int) -> str:
    return f"swd-{model}-{steps}-steps"


def lora(model: str, steps: int) -> tuple[str, str]:
    """SwD LoRA Loader's ``lora_name`` and the file's URL."""
    folder = lora_folder(model, steps)
    return f"{folder}/adapter_model.safetensors", f"{HF}/yresearch/{folder}/resolve/main/adapter_model.safetensors"


def note_text(model: str, steps: int, extra: str = "", split: bool = False) -> str:
    """The note: what SwD is, the model files (``split``: diffusion model + VAE files, no checkpoint), the
    settings; ``extra`` after the first paragraph."""
    ckpt, ckpt_url = CHECKPOINTS[model]
    folder = lora_folder(model, steps)
    repo = f"{HF}/stabilityai/stable-diffusion-3.5-{model}"
    te = f"{HF}/stabilityai/stable-diffusion-3.5-large/tree/main/text_encoders"
    source = f"[{repo.removeprefix(HF + '/')}]({repo}) ([file]({ckpt_url}))"
    rows = [(f"`{ckpt}`", "`ComfyUI/models/diffusion_models/`" if split else "`ComfyUI/models/checkpoints/`", source)]
    if split:
        rows.append((f"`{SD3_VAE[0]}` (from `vae/`; rename it freely)", "`ComfyUI/models/vae/`",
                     f"[stable-diffusion-3.5-large]({repo.replace(model, 'large')}) ([file]({SD3_VAE[1]}))"))
    rows += [
        ("`clip_g.safetensors`, `clip_l.safetensors`, `t5xxl_fp16.safetensors`", "`ComfyUI/models/text_encoders/`",
         f"[stable-diffusion-3.5-large / text_encoders]({te})"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", f"`ComfyUI/models/loras/{folder}/`",
         f"[yresearch/{folder}]({HF}/yresearch/{folder})"),
    ]
    table = model_files(rows)
    vae = "" if split else "\nThe checkpoint includes the VAE."
    return f"""## SwD: SD3.5 {model.capitalize()}, {steps} steps

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it,
so this {RESOLUTION}x{RESOLUTION} image costs about two full-size steps. Needs the
**{PACK_ID}** node pack.
{extra}
### Model files (download, then put them here)

{table}

The Stability AI repositories are gated: accept the license on Hugging Face first.{vae}

{lora_files(f"yresearch/{folder}", folder)}

### Settings
* **SwD Schedule** preset `{preset_name(model, steps)}` must match the LoRA.
* cfg **1.0** (the LoRA is distilled without guidance; the negative prompt is then unused).
* Any size works: the last step runs at the latent's size; the schedule's scales are relative.
"""


def add_loaders(g: Graph, model: str) -> tuple[dict, dict]:
    """Load Checkpoint and TripleCLIPLoader in the left column; returns both nodes."""
    ckpt, ckpt_url = CHECKPOINTS[model]
    loader = g.node("CheckpointLoaderSimple", f"Load SD3.5 {model.capitalize()}", (COL_A, 0), (WIDTH_A, 98), [ckpt],
                    models=[(ckpt, ckpt_url, "checkpoints")])
    clip = g.node("TripleCLIPLoader", "SD3.5 text encoders", (COL_A, 150), (WIDTH_A, 130),
                  [n for n, _ in TEXT_ENCODERS], models=[(n, u, "text_encoders") for n, u in TEXT_ENCODERS])
    return loader, clip


def family(model: str, steps: int) -> Family:
    def loaders(g: Graph):
        loader, clip = add_loaders(g, model)
        return (loader, "MODEL"), (clip, "CLIP"), (loader, "VAE")

    return Family(note=note_text(model, steps), loaders=loaders, lora_y=330,
                  lora=lora(model, steps), preset=preset_name(model, steps),
                  latent=("EmptySD3LatentImage", "Empty SD3 Latent Image"))


def build(name: str, model: str = "large", steps: int = 6, conditioning=None) -> Graph:
    return build_txt2img(name, family(model, steps), conditioning)


def build_img2img(name: str) -> Graph:
    """Large 6 steps from an input image: LoadImage -> VAEEncode -> SwDSampler(denoise < 1)."""
    g = build(name)
    nodes = by_type(g)
    remove_node(g, nodes["EmptySD3LatentImage"])
    sampler = nodes["SwDSampler"]
    load = g.node("LoadImage", "Load Image (start image)", (COL_B, 420), (WIDTH_B, 340), [IMAGE, "image"])
    encode = g.node("VAEEncode", "VAE Encode", (COL_B, 820), (210, 46))
    g.link(load, "IMAGE", encode, "pixels")
    g.link(nodes["CheckpointLoaderSimple"], "VAE", encode, "vae")
    g.link(encode, "LATENT", sampler, "latent_image")
    sampler["widgets_values"][4] = IMG2IMG_DENOISE
    set_note(g, note_text("large", 6, extra=(
        f"\n**Image-to-image**: the start image (Load Image) sets the output size; **denoise** "
        f"{IMG2IMG_DENOISE} skips the steps whose sigma is above it and starts from the image, "
        f"resized to the first remaining scale (lower = closer to the image).\n")))
    set_prefix(g, "swd/large-6-steps-img2img")
    return g


def build_custom_advanced(name: str) -> Graph:
    """Large 6 steps through SamplerCustomAdvanced with SamplerSwD and the schedule's SIGMAS."""
    g = build(name)
    nodes = by_type(g)
    remove_node(g, nodes["SwDSampler"])
    noise = g.node("RandomNoise", "RandomNoise", (COL_C, 0), (WIDTH_C, 82), [SEED, "fixed"])
    guider = g.node("CFGGuider", "CFG Guider", (COL_C, 130), (WIDTH_C, 98), [1.0])
    swd = g.node("SamplerSwD", "SwD Sampler (SAMPLER)", (COL_C, 280), (WIDTH_C, 58), ["bicubic"])
    sca = g.node("SamplerCustomAdvanced", "SamplerCustomAdvanced", (COL_C, 390 + MESSAGE_ROOM), (WIDTH_C, 106))
    g.link(noise, "NOISE", sca, "noise")
    g.link(nodes["SwDLoraLoader"], "MODEL", guider, "model")
    pos, neg = prompts(g)
    g.link(pos, "CONDITIONING", guider, "positive")
    g.link(neg, "CONDITIONING", guider, "negative")
    g.link(guider, "GUIDER", sca, "guider")
    g.link(nodes["SwDSchedule"], "schedule", swd, "schedule")
    g.link(swd, "SAMPLER", sca, "sampler")
    g.link(nodes["SwDSchedule"], "sigmas", sca, "sigmas")
    g.link(nodes["EmptySD3LatentImage"], "LATENT", sca, "latent_image")
    g.link(sca, "output", nodes["VAEDecode"], "samples")
    set_note(g, note_text("large", 6, extra=(
        "\n**SamplerCustomAdvanced**: SamplerSwD is the scale-wise sampler as a SAMPLER; the "
        "SwD Schedule's `sigmas` go to SIGMAS; RandomNoise's seed seeds every scale's noise "
        "(same picture as SwD Sampler with that seed).\n")))
    set_prefix(g, "swd/large-6-steps-custom-advanced")
    return g


def build_split_files(name: str) -> Graph:
    """Large 6 steps from separate files: UNETLoader + TripleCLIPLoader + VAELoader (no checkpoint)."""
    g = build(name)
    ckpt = by_type(g)["CheckpointLoaderSimple"]
    ckpt_file, ckpt_url = CHECKPOINTS["large"]
    # the UNETLoader and the VAELoader take the checkpoint loader's outputs
    unet = g.node("UNETLoader", "Load Diffusion Model (SD3.5 Large)", (COL_A, 0), (WIDTH_A, 82),
                  [ckpt_file, "default"], models=[(ckpt_file, ckpt_url, "diffusion_models")])
    schedule = by_type(g)["SwDSchedule"]
    below_schedule = schedule["pos"][1] + schedule["size"][1] + 70
    vae = g.node("VAELoader", "Load VAE (SD3.5)", (COL_A, below_schedule), (WIDTH_A, 58), [SD3_VAE[0]],
                 models=[(SD3_VAE[0], SD3_VAE[1], "vae")])
    g.nodes.remove(ckpt)
    for link in g.links:
        if link[1] == ckpt["id"]:
            origin = unet if link[5] == "MODEL" else vae
            link[1], link[2] = origin["id"], 0
            origin["outputs"][0]["links"].append(link[0])
    renumber_links(g)
    set_note(g, note_text("large", 6, split=True).replace(HEADING, f"{HEADING}: split files", 1) + (
        "\n### Split files (no single checkpoint)\n"
        f"* `{ckpt_file}` goes in `ComfyUI/models/diffusion_models/` (**Load Diffusion Model**; the same file as "
        "the checkpoint: the loader keeps only the diffusion model). `weight_dtype` `fp8_e4m3fn` stores it in fp8 "
        "(about half the memory; ComfyUI adds the SwD LoRA to the fp8 weights and rounds the sum to fp8).\n"
        "* The VAE is its own file (**Load VAE**); the text encoders as above (ComfyUI also takes an fp8 T5, e.g. "
        "`t5xxl_fp8_e4m3fn.safetensors`; not exercised by the tests here).\n"))
    set_prefix(g, "swd/large-6-steps-split-files")
    return g


def build_merge_lora(name: str) -> Graph:
    """Load Checkpoint -> SwD LoRA Loader -> Save Checkpoint: the SwD LoRA baked into a checkpoint."""
    g = Graph(name)
    lora_name, lora_url = lora("large", 6)
    text = note_text("large", 6).split("### Settings")[0].replace(
        HEADING, "## SwD: bake the SD3.5 Large 6-step LoRA into a checkpoint", 1)
    text += (
        "### What this does\n"
        f"Writes `ComfyUI/output/{MERGED_PREFIX}_00001_.safetensors`: the diffusion model with the SwD LoRA "
        "merged in at PEFT's scale, the text encoders and the VAE. Move it into `ComfyUI/models/checkpoints/` and "
        "load it with **Load Checkpoint**, without the LoRA loader: SwD Sampler then gives the same latent as "
        "checkpoint + SwD LoRA Loader. To keep only the diffusion model (for GGUF or fp8 conversion), use "
        "**Save Model** (`ModelSave`) instead; see docs/use-with.md, *...a merged checkpoint*.\n")
    g.node("MarkdownNote", "About", (NOTE_X, 0), (NOTE_SIZE[0], 640), [text], color=NOTE_COLOR)
    loader, clip = add_loaders(g, "large")
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (COL_A, 330), (WIDTH_A, 82), [lora_name, 1.0],
                      models=[(lora_name, lora_url, "loras")])
    save = g.node("CheckpointSave", "Save Checkpoint (merged)", (COL_B, 0), (WIDTH_B, 82), [MERGED_PREFIX])
    g.link(loader, "MODEL", swd_lora, "model")
    g.link(swd_lora, "MODEL", save, "model")
    g.link(clip, "CLIP", save, "clip")
    g.link(loader, "VAE", save, "vae")
    return g


def build_vs_base(name: str) -> Graph:
    """The same prompt and seed: SwD (LoRA + SwD Sampler, 6 steps) beside the base model (KSampler, 28 steps)."""
    g = build(name)
    nodes = by_type(g)
    pos, neg = prompts(g)
    neg["title"] = "Negative Prompt (base run only)"
    ckpt = nodes["CheckpointLoaderSimple"]
    add_base_run(g, f"Base SD3.5 Large: {BASE_STEPS} steps, cfg {BASE_CFG}",
                 [SEED, "fixed", BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER, 1.0],
                 (ckpt, "MODEL"), pos, neg, nodes["EmptySD3LatentImage"],
                 (ckpt, "VAE"), "Base model (28 steps)", "swd/large-base-28-steps")
    nodes["SaveImage"]["title"] = "SwD (6 steps)"
    set_prefix(g, "swd/large-6-steps-vs-base")
    retitle_note(g, HEADING, "beside the base model", comparison_text(
        "the base model alone", f"{BASE_STEPS} steps, cfg {BASE_CFG}, {BASE_SAMPLER} / {BASE_SCHEDULER} "
        "(the negative prompt is used there)", " (the queue shows each node's time)"))
    return g


def build_all() -> dict[str, Graph]:
    graphs = {name: build(name, model, steps) for name, model, steps in PRESETS}
    for name, builder in (("swd-sd3.5-large-6-steps-split-files", build_split_files),
                          ("swd-sd3.5-large-merge-lora", build_merge_lora),
                          ("swd-sd3.5-large-vs-base", build_vs_base),
                          ("swd-sd3.5-large-6-steps-img2img", build_img2img),
                          ("swd-sd3.5-large-6-steps-sampler-custom-advanced", build_custom_advanced)):
        graphs[name] = builder(name)
    return graphs
