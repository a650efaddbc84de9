"""Write the shipped workflows: ``workflows/*.json`` (UI format) and ``workflows/api/*.json`` (API format).

    python3 scripts/dev.py workflows           # (re)write every file
    python3 scripts/dev.py workflows --check   # exit 1 if a file differs from what this module writes

This script is the ONE source of the workflow files: never edit them by hand. Both formats
are written from the same graph below. The tests check that the files equal this script's
output, that the UI files are valid for ComfyUI's frontend (node types and widget values
against the real server's /object_info), that converting each UI file to API format with
``harness.workflow_api`` (an independent converter driven by /object_info) gives the
API file, that the frontend's own ``app.graphToPrompt()`` gives it too, and that every
workflow runs in a real ComfyUI server. The graph and both formats: ``workflow_graph``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.paths import ROOT
from harness.paths import WORKFLOWS as OUT_DIR
from workflow_graph import PACK_ID, Graph, _renumber_links, pack_version  # noqa: F401  (tests read pack_version here)

API_DIR = OUT_DIR / "api"

RESOLUTION = 1024
SEED = 42
PROMPT = ("a red fox sitting in a snowy birch forest at golden hour, soft rim light, "
          "detailed fur, shallow depth of field, professional photograph")
NEGATIVE = ""
# SwD Schedule's text fields (used only with preset "custom"): the node's defaults
CUSTOM_SCALES = "32, 48, 64, 80, 96, 128"
CUSTOM_SIGMAS = "1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0"

HF = "https://huggingface.co"
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


# --- the workflows -------------------------------------------------------------------------
PRESETS = [  # (file stem, model, steps): the published SD3.5 SwD LoRAs and their schedules
    ("swd-sd3.5-large-6-steps", "large", 6),
    ("swd-sd3.5-large-4-steps", "large", 4),
    ("swd-sd3.5-medium-6-steps", "medium", 6),
    ("swd-sd3.5-medium-4-steps", "medium", 4),
]
IMG2IMG_DENOISE = 0.8
IMG2IMG_IMAGE = "example.png"  # ComfyUI ships input/example.png


def preset_name(model: str, steps: int) -> str:
    return f"SD3.5 {model.capitalize()}, {steps} steps"


def lora_folder(model: str, steps: int) -> str:
    return f"swd-{model}-{steps}-steps"


def note_text(model: str, steps: int, extra: str = "") -> str:
    ckpt, ckpt_url = CHECKPOINTS[model]
    lora = lora_folder(model, steps)
    repo = f"{HF}/stabilityai/stable-diffusion-3.5-{model}"
    te = f"{HF}/stabilityai/stable-diffusion-3.5-large/tree/main/text_encoders"
    rows = [
        (f"`{ckpt}`", "`ComfyUI/models/checkpoints/`",
         f"[{repo.removeprefix(HF + '/')}]({repo}) ([file]({ckpt_url}))"),
        ("`clip_g.safetensors`, `clip_l.safetensors`, `t5xxl_fp16.safetensors`", "`ComfyUI/models/text_encoders/`",
         f"[stable-diffusion-3.5-large / text_encoders]({te})"),
        ("`adapter_model.safetensors` **and** `adapter_config.json`", f"`ComfyUI/models/loras/{lora}/`",
         f"[yresearch/{lora}]({HF}/yresearch/{lora})"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""## SwD: SD3.5 {model.capitalize()}, {steps} steps

Scale-wise distillation: each step predicts the clean latent, enlarges it and re-noises it,
so this {RESOLUTION}x{RESOLUTION} image costs about two full-size steps. Needs the
**{PACK_ID}** node pack.
{extra}
### Model files (download, then put them here)

| file | folder | from |
|---|---|---|
{table}

The Stability AI repositories are gated: accept the license on Hugging Face first.
The checkpoint includes the VAE. Keep the LoRA's two files together in their folder
(the loader reads `adapter_config.json` for the LoRA's scale), then pick
`{lora}/adapter_model.safetensors` in **SwD LoRA Loader** (press `r` to refresh the lists).

### Settings
* **SwD Schedule** preset `{preset_name(model, steps)}` must match the LoRA.
* cfg **1.0** (the LoRA is distilled without guidance; the negative prompt is then unused).
* Any size works: the last step runs at the latent's size; the schedule's scales are relative.
"""


def build_txt2img(name: str, model: str, steps: int) -> Graph:
    g = Graph(name)
    ckpt, ckpt_url = CHECKPOINTS[model]
    lora = lora_folder(model, steps)
    lora_url = f"{HF}/yresearch/{lora}/resolve/main/adapter_model.safetensors"
    g.node("MarkdownNote", "Model files", (-520, 0), (480, 700), [note_text(model, steps)], color=("#432", "#653"))
    loader = g.node("CheckpointLoaderSimple", f"Load SD3.5 {model.capitalize()}", (0, 0), (380, 98), [ckpt],
                    models=[(ckpt, ckpt_url, "checkpoints")])
    clip = g.node("TripleCLIPLoader", "SD3.5 text encoders", (0, 150), (380, 130),
                  [n for n, _ in TEXT_ENCODERS], models=[(n, u, "text_encoders") for n, u in TEXT_ENCODERS])
    lora_name = f"{lora}/adapter_model.safetensors"
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (0, 330), (380, 82), [lora_name, 1.0],
                      models=[(lora_name, lora_url, "loras")])
    schedule = g.node("SwDSchedule", "SwD Schedule", (0, 460), (380, 106),
                      [preset_name(model, steps), CUSTOM_SCALES, CUSTOM_SIGMAS])
    pos = g.node("CLIPTextEncode", "Positive Prompt", (430, 0), (420, 200), [PROMPT], color=("#232", "#353"))
    neg = g.node("CLIPTextEncode", "Negative Prompt (unused at cfg 1)", (430, 250), (420, 120), [NEGATIVE],
                 color=("#322", "#533"))
    latent = g.node("EmptySD3LatentImage", "Empty SD3 Latent Image", (430, 420), (320, 106),
                    [RESOLUTION, RESOLUTION, 1])
    g.link(loader, "MODEL", swd_lora, "model")
    for enc in (pos, neg):
        g.link(clip, "CLIP", enc, "clip")
    sample_and_save(g, name, (swd_lora, "MODEL"), (pos, "CONDITIONING"), (neg, "CONDITIONING"), (latent, "LATENT"),
                    schedule, (loader, "VAE"))
    return g


def sample_and_save(g: Graph, name: str, model, positive, negative, latent, schedule, vae) -> tuple:
    """SwD Sampler -> VAE Decode -> Save Image at the right of the graph, wired as every text-to-image
    workflow wires them; ``model``, ``positive``, ``negative``, ``latent``, ``vae`` are ``(node, output)``.
    Returns ``(sampler, decode, save)``."""
    sampler = g.node("SwDSampler", "SwD Sampler", (900, 0), (320, 262), [SEED, "fixed", 1.0, "bicubic", 1.0])
    decode = g.node("VAEDecode", "VAE Decode", (1260, 0), (210, 46))
    save = g.node("SaveImage", "Save Image", (1260, 90), (560, 620), [f"swd/{name.removeprefix('swd-')}"])
    for (node, output), socket in ((model, "model"), (positive, "positive"), (negative, "negative"),
                                   (latent, "latent_image"), ((schedule, "schedule"), "schedule")):
        g.link(node, output, sampler, socket)
    g.link(sampler, "LATENT", decode, "samples")
    g.link(*vae, decode, "vae")
    g.link(decode, "IMAGE", save, "images")
    return sampler, decode, save


def build_img2img(name: str) -> Graph:
    """Large 6 steps from an input image: LoadImage -> VAEEncode -> SwDSampler(denoise < 1)."""
    g = build_txt2img(name, "large", 6)
    by_type = {n["type"]: n for n in g.nodes}
    latent = by_type["EmptySD3LatentImage"]
    # replace the empty latent by the encoded image (same id keeps the layout simple)
    latent_id = latent["id"]
    g.nodes.remove(latent)
    g.links = [link for link in g.links if link[1] != latent_id]
    sampler = by_type["SwDSampler"]
    sampler["inputs"][[i["name"] for i in sampler["inputs"]].index("latent_image")]["link"] = None
    _renumber_links(g)
    load = g.node("LoadImage", "Load Image (start image)", (430, 420), (320, 360), [IMG2IMG_IMAGE, "image"])
    encode = g.node("VAEEncode", "VAE Encode", (430, 830), (210, 46))
    g.link(load, "IMAGE", encode, "pixels")
    g.link(by_type["CheckpointLoaderSimple"], "VAE", encode, "vae")
    g.link(encode, "LATENT", sampler, "latent_image")
    sampler["widgets_values"][4] = IMG2IMG_DENOISE
    by_type["MarkdownNote"]["widgets_values"][0] = note_text("large", 6, extra=(
        f"\n**Image-to-image**: the start image (Load Image) sets the output size; **denoise** "
        f"{IMG2IMG_DENOISE} skips the steps whose sigma is above it and starts from the image, "
        f"resized to the first remaining scale (lower = closer to the image).\n"))
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-img2img"
    return g


def build_custom_advanced(name: str) -> Graph:
    """Large 6 steps through SamplerCustomAdvanced with SamplerSwD and the schedule's SIGMAS."""
    g = build_txt2img(name, "large", 6)
    by_type = {n["type"]: n for n in g.nodes}
    old = by_type["SwDSampler"]
    g.nodes.remove(old)
    g.links = [link for link in g.links if old["id"] not in (link[1], link[3])]
    _renumber_links(g)
    noise = g.node("RandomNoise", "RandomNoise", (900, 0), (320, 82), [SEED, "fixed"])
    guider = g.node("CFGGuider", "CFGGuider", (900, 130), (320, 98), [1.0])
    swd = g.node("SamplerSwD", "SamplerSwD", (900, 280), (320, 58), ["bicubic"])
    sca = g.node("SamplerCustomAdvanced", "SamplerCustomAdvanced", (900, 390), (320, 106))
    g.link(noise, "NOISE", sca, "noise")
    g.link(by_type["SwDLoraLoader"], "MODEL", guider, "model")
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    g.link(pos, "CONDITIONING", guider, "positive")
    g.link(neg, "CONDITIONING", guider, "negative")
    g.link(guider, "GUIDER", sca, "guider")
    g.link(by_type["SwDSchedule"], "schedule", swd, "schedule")
    g.link(swd, "SAMPLER", sca, "sampler")
    g.link(by_type["SwDSchedule"], "sigmas", sca, "sigmas")
    g.link(by_type["EmptySD3LatentImage"], "LATENT", sca, "latent_image")
    g.link(sca, "output", by_type["VAEDecode"], "samples")
    by_type["MarkdownNote"]["widgets_values"][0] = note_text("large", 6, extra=(
        "\n**SamplerCustomAdvanced**: SamplerSwD is the scale-wise sampler as a SAMPLER; the "
        "SwD Schedule's `sigmas` go to SIGMAS; RandomNoise's seed seeds every scale's noise "
        "(same picture as SwD Sampler with that seed).\n"))
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-custom-advanced"
    return g


# --- "Use with..." workflows (issue #16) ------------------------------------------------------
SD3_VAE = ("diffusion_pytorch_model.safetensors",
           f"{HF}/stabilityai/stable-diffusion-3.5-large/resolve/main/vae/diffusion_pytorch_model.safetensors")
BASE_STEPS, BASE_CFG = 28, 4.5  # SD3.5 Large's usual settings (Stability's model card / ComfyUI examples)
BASE_SAMPLER, BASE_SCHEDULER = "euler", "sgm_uniform"
MERGED_PREFIX = "checkpoints/sd3.5_large_swd_6_steps"


def _by_type(g: Graph) -> dict[str, dict]:
    return {n["type"]: n for n in g.nodes}


def _note(g: Graph, title: str, text: str) -> None:
    note = _by_type(g)["MarkdownNote"]
    note["widgets_values"][0] = note["widgets_values"][0].replace(
        "## SwD: SD3.5 Large, 6 steps", f"## SwD: SD3.5 Large, 6 steps: {title}", 1) + text


def build_split_files(name: str) -> Graph:
    """Large 6 steps from separate files: UNETLoader + TripleCLIPLoader + VAELoader (no checkpoint)."""
    g = build_txt2img(name, "large", 6)
    by_type = _by_type(g)
    ckpt = by_type["CheckpointLoaderSimple"]
    ckpt_file, ckpt_url = CHECKPOINTS["large"]
    # same node id, new type: the UNETLoader takes the checkpoint loader's place
    unet = g.node("UNETLoader", "Load Diffusion Model (SD3.5 Large)", (0, 0), (380, 82), [ckpt_file, "default"],
                  models=[(ckpt_file, ckpt_url, "diffusion_models")])
    vae = g.node("VAELoader", "Load VAE (SD3.5)", (0, 600), (380, 58), [SD3_VAE[0]],
                 models=[(SD3_VAE[0], SD3_VAE[1], "vae")])
    g.nodes.remove(ckpt)
    for link in g.links:
        if link[1] == ckpt["id"]:
            origin = unet if link[5] == "MODEL" else vae
            link[1], link[2] = origin["id"], 0
            origin["outputs"][0]["links"].append(link[0])
    _renumber_links(g)
    note = by_type["MarkdownNote"]["widgets_values"]
    row = f"| `{ckpt_file}` | `ComfyUI/models/checkpoints/` |"
    vae_row = (f"| `{SD3_VAE[0]}` | `ComfyUI/models/vae/` | "
               f"[stable-diffusion-3.5-large / vae]({HF}/stabilityai/stable-diffusion-3.5-large/tree/main/vae) |")
    assert row in note[0] and "The checkpoint includes the VAE. " in note[0]
    note[0] = note[0].replace(row, f"| `{ckpt_file}` | `ComfyUI/models/diffusion_models/` |", 1).replace(
        "The checkpoint includes the VAE. ", "", 1)
    lora_row = "| `adapter_model.safetensors` **and**"
    note[0] = note[0].replace(lora_row, f"{vae_row}\n{lora_row}", 1)
    _note(g, "split files", (
        "\n### Split files (no single checkpoint)\n"
        f"* `{ckpt_file}` in `ComfyUI/models/diffusion_models/` (**Load Diffusion Model**; the same file as the "
        "checkpoint: the loader keeps only the diffusion model). `weight_dtype` `fp8_e4m3fn` stores it in fp8 "
        "(about half the memory; ComfyUI adds the SwD LoRA to the fp8 weights and rounds the sum to fp8).\n"
        f"* VAE: `vae/{SD3_VAE[0]}` of [stable-diffusion-3.5-large]({HF}/stabilityai/stable-diffusion-3.5-large) "
        f"in `ComfyUI/models/vae/` (rename it freely, e.g. `sd3.5_vae.safetensors`).\n"
        "* Text encoders as above (fp8 T5, e.g. `t5xxl_fp8_e4m3fn.safetensors`, works too).\n"))
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-split-files"
    return g


def build_merge_lora(name: str) -> Graph:
    """Load Checkpoint -> SwD LoRA Loader -> Save Checkpoint: the SwD LoRA baked into a checkpoint."""
    g = Graph(name)
    ckpt, ckpt_url = CHECKPOINTS["large"]
    lora = lora_folder("large", 6)
    lora_name = f"{lora}/adapter_model.safetensors"
    lora_url = f"{HF}/yresearch/{lora}/resolve/main/adapter_model.safetensors"
    text = note_text("large", 6).split("### Settings")[0].replace(
        "## SwD: SD3.5 Large, 6 steps", "## SwD: bake the SD3.5 Large 6-step LoRA into a checkpoint", 1)
    text += (
        "### What this does\n"
        f"Writes `ComfyUI/output/{MERGED_PREFIX}_00001_.safetensors`: the diffusion model with the SwD LoRA "
        "merged in at PEFT's scale, the text encoders and the VAE. Move it into `ComfyUI/models/checkpoints/` and "
        "load it with **Load Checkpoint**, without the LoRA loader: SwD Sampler then gives the same latent as "
        "checkpoint + SwD LoRA Loader. To keep only the diffusion model (for GGUF or fp8 conversion), use "
        "**Save Model** (`ModelSave`) instead; see docs/use-with.md, *...a merged checkpoint*.\n")
    g.node("MarkdownNote", "About", (-520, 0), (480, 640), [text], color=("#432", "#653"))
    loader = g.node("CheckpointLoaderSimple", "Load SD3.5 Large", (0, 0), (380, 98), [ckpt],
                    models=[(ckpt, ckpt_url, "checkpoints")])
    clip = g.node("TripleCLIPLoader", "SD3.5 text encoders", (0, 150), (380, 130),
                  [n for n, _ in TEXT_ENCODERS], models=[(n, u, "text_encoders") for n, u in TEXT_ENCODERS])
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (0, 330), (380, 82), [lora_name, 1.0],
                      models=[(lora_name, lora_url, "loras")])
    save = g.node("CheckpointSave", "Save Checkpoint (merged)", (430, 0), (380, 82), [MERGED_PREFIX])
    g.link(loader, "MODEL", swd_lora, "model")
    g.link(swd_lora, "MODEL", save, "model")
    g.link(clip, "CLIP", save, "clip")
    g.link(loader, "VAE", save, "vae")
    return g


def add_base_run(g: Graph, title: str, ksampler: list, model, pos: dict, neg: dict, latent: dict, vae,
                 save_title: str, prefix: str) -> None:
    """The base model beside the SwD run: stock KSampler (``ksampler`` widgets) -> VAE Decode -> Save Image,
    on the same prompts and latent; ``model`` and ``vae`` are ``(node, output)``."""
    base = g.node("KSampler", title, (900, 760), (320, 262), ksampler)
    decode = g.node("VAEDecode", "VAE Decode (base)", (1260, 760), (210, 46))
    save = g.node("SaveImage", save_title, (1860, 90), (560, 620), [prefix])
    g.link(*model, base, "model")
    g.link(pos, "CONDITIONING", base, "positive")
    g.link(neg, "CONDITIONING", base, "negative")
    g.link(latent, "LATENT", base, "latent_image")
    g.link(base, "LATENT", decode, "samples")
    g.link(*vae, decode, "vae")
    g.link(decode, "IMAGE", save, "images")


def build_vs_base(name: str) -> Graph:
    """The same prompt and seed: SwD (LoRA + SwD Sampler, 6 steps) beside the base model (KSampler, 28 steps)."""
    g = build_txt2img(name, "large", 6)
    by_type = _by_type(g)
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    neg["title"] = "Negative Prompt (base run only)"
    add_base_run(g, f"Base SD3.5 Large: {BASE_STEPS} steps, cfg {BASE_CFG}",
                 [SEED, "fixed", BASE_STEPS, BASE_CFG, BASE_SAMPLER, BASE_SCHEDULER, 1.0],
                 (by_type["CheckpointLoaderSimple"], "MODEL"), pos, neg, by_type["EmptySD3LatentImage"],
                 (by_type["CheckpointLoaderSimple"], "VAE"), "Base model (28 steps)", "swd/large-base-28-steps")
    by_type["SaveImage"]["title"] = "SwD (6 steps)"
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-vs-base"
    _note(g, "beside the base model", (
        f"\n### The comparison\nThe same prompt, seed ({SEED}) and size through the base model alone: "
        f"stock **KSampler**, {BASE_STEPS} steps, cfg {BASE_CFG}, {BASE_SAMPLER} / {BASE_SCHEDULER} (the negative "
        "prompt is used there). The two images are not the same picture (different samplers draw different "
        "noise): compare quality and time (the queue shows each node's time).\n"))
    return g


def build_all() -> dict[str, Graph]:
    graphs = {name: build_txt2img(name, model, steps) for name, model, steps in PRESETS}
    for name, build in (("swd-sd3.5-large-6-steps-split-files", build_split_files),
                        ("swd-sd3.5-large-merge-lora", build_merge_lora),
                        ("swd-sd3.5-large-vs-base", build_vs_base)):
        graphs[name] = build(name)
    import workflows_flux
    import workflows_sdxl

    for family in (workflows_flux, workflows_sdxl):
        graphs.update(family.build_all())
    graphs["swd-sd3.5-large-6-steps-img2img"] = build_img2img("swd-sd3.5-large-6-steps-img2img")
    name = "swd-sd3.5-large-6-steps-sampler-custom-advanced"
    graphs[name] = build_custom_advanced(name)
    from workflows_controlnet import build_controlnet, build_flux_controlnet  # here: it imports this module
    graphs["swd-sd3.5-large-controlnet"] = build_controlnet("swd-sd3.5-large-controlnet")
    graphs["swd-flux1-dev-controlnet"] = build_flux_controlnet("swd-flux1-dev-controlnet")
    from workflows_inpaint import build_inpaint  # here: it imports this module
    graphs["swd-sd3.5-large-inpaint"] = build_inpaint("swd-sd3.5-large-inpaint")
    return graphs


def render() -> dict[Path, str]:
    """Every file this script writes, path -> text."""
    files = {}
    for name, graph in build_all().items():
        files[OUT_DIR / f"{name}.json"] = json.dumps(graph.ui(), indent=2, ensure_ascii=False) + "\n"
        files[API_DIR / f"{name}.json"] = json.dumps(graph.api(), indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files = render()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    extra = [p for d in (OUT_DIR, API_DIR) if d.exists() for p in d.glob("*.json") if p not in files]
    if args.check:
        for p in stale + extra:
            print(f"out of date: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
