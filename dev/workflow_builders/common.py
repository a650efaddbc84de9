"""What every family's workflows share: the prompt, seed and size, the schedule node's text fields, the
graph helpers, and the one text-to-image builder each family parameterises with a :class:`Family`.

Imports no family module: ``sd35``, ``flux``, ``sdxl`` and the combinations (``controlnet``,
``inpaint``) import this one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swd_core import preset_texts

from .graph import Graph

HF = "https://huggingface.co"
RESOLUTION = 1024
SEED = 42
PROMPT = ("a red fox sitting in a snowy birch forest at golden hour, soft rim light, "
          "detailed fur, shallow depth of field, professional photograph")
NEGATIVE = ""
IMAGE = "example.png"  # ComfyUI ships input/example.png: the start image and the ControlNet hint

NOTE_COLOR = ("#432", "#653")

# The layout: a note at the left, then four columns (loaders | prompts and latent | samplers | decode and save).
# Fit-to-view (the files carry no saved view) zooms to 0.75 of the graph's bounds; with the graph within
# about 2200 x 1100 it opens at a zoom >= 0.65 in a 1920x960 window (0.8 at 2400x1300), above the
# frontend's low-quality threshold (0.57 at devicePixelRatio 1), so widget text is drawn.
NOTE_X, NOTE_SIZE = -460, (420, 900)
COL_A, COL_B, COL_C, COL_D = 0, 480, 940, 1320
WIDTH_A, WIDTH_B, WIDTH_C, WIDTH_D = 440, 420, 340, 420
#: SwD Sampler's height once a run has drawn its latent preview in it (with previews on): what goes under the
#: sampler starts this low
SAMPLER_ROOM = 600
#: the room a run's message box takes under the widgets of SwD LoRA Loader and SwD Sampler (SAMPLER) (web/swd.js
#: grows the node to fit it): what goes under them starts this much lower
MESSAGE_ROOM = 200
POSITIVE_COLOR = ("#232", "#353")
NEGATIVE_COLOR = ("#322", "#533")


def model_files(rows: list[tuple[str, str, str]]) -> str:
    """The note's model files, ``(file, folder, where from)`` rows as a list: it wraps in the 420-wide note,
    where the frontends cut a three-column table at the note's edge."""
    return "\n".join(f"* {file} → {folder}, from {source}" for file, folder, source in rows)


def lora_files(repo: str, folder: str) -> str:
    """The note's paragraph on the LoRA's two files (``repo`` on Hugging Face, ``folder`` under ``loras/``)."""
    base = f"{HF}/{repo}/resolve/main"
    return (f"**The LoRA is two files**, both in `ComfyUI/models/loras/{folder}/`: "
            f"[adapter_model.safetensors]({base}/adapter_model.safetensors) and "
            f"[adapter_config.json]({base}/adapter_config.json) (the loader reads the LoRA's scale from it; "
            "without it, scale 1 = PEFT's default). The missing-models dialog offers only the first (the "
            "frontend downloads model files only, and a browser saves it to your Downloads folder): "
            f"put both files in `loras/{folder}/`, then pick `{folder}/adapter_model.safetensors` in "
            "**SwD LoRA Loader** (press `r` to refresh the lists).")


#: ``(node, output name)``: one end of a link
Socket = tuple[dict, str]


def by_type(g: Graph) -> dict[str, dict]:
    """The graph's nodes by type (the last one of a type wins)."""
    return {n["type"]: n for n in g.nodes}


def prompts(g: Graph) -> tuple[dict, dict]:
    """The positive and the negative CLIPTextEncode nodes, in that order."""
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    return pos, neg


def set_note(g: Graph, text: str) -> None:
    by_type(g)["MarkdownNote"]["widgets_values"][0] = text


def retitle_note(g: Graph, heading: str, title: str, text: str = "") -> None:
    """Append ``title`` to the note's first heading ``heading`` (``"## ..."``) and ``text`` to the note."""
    note = by_type(g)["MarkdownNote"]
    note["widgets_values"][0] = note["widgets_values"][0].replace(heading, f"{heading}: {title}", 1) + text


def set_prefix(g: Graph, prefix: str) -> None:
    """The SwD run's (the first) Save Image's filename prefix."""
    next(n for n in g.nodes if n["type"] == "SaveImage")["widgets_values"][0] = prefix


@dataclass(frozen=True)
class Family:
    """What a family's text-to-image graph needs beyond the shared nodes.

    ``loaders(g)`` adds the family's model loaders in the left column and returns the
    ``(model, clip, vae)`` sockets; ``lora_y`` is where SwD LoRA Loader goes under them (SwD Schedule
    130 + ``MESSAGE_ROOM`` below). ``guidance`` (FLUX's embedded guidance) puts a FluxGuidance node between the positive
    prompt and the sampler. ``latent`` is the empty latent's ``(type, title)``.
    """

    note: str
    loaders: Callable[[Graph], tuple[Socket, Socket, Socket]]
    lora_y: int
    lora: tuple[str, str]  # (lora_name, url)
    preset: str
    latent: tuple[str, str]
    guidance: float | None = None


def build_txt2img(name: str, family: Family, conditioning=None) -> Graph:
    """Note | loaders, SwD LoRA Loader, SwD Schedule | prompts, empty latent | SwD Sampler -> VAE Decode ->
    Save Image. ``conditioning(g, positive, negative)``, if given, adds nodes between the prompts and the
    sampler and returns the sampler's ``(positive, negative)`` sockets."""
    g = Graph(name)
    g.node("MarkdownNote", "Model files", (NOTE_X, 0), NOTE_SIZE, [family.note], color=NOTE_COLOR)
    model, clip, vae = family.loaders(g)
    lora_name, lora_url = family.lora
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (COL_A, family.lora_y), (WIDTH_A, 82), [lora_name, 1.0],
                      models=[(lora_name, lora_url, "loras")])
    schedule = g.node("SwDSchedule", "SwD Schedule", (COL_A, family.lora_y + 130 + MESSAGE_ROOM), (WIDTH_A, 130),
                      [family.preset, *preset_texts(family.preset)])  # the fields show the preset (web/swd.js)
    pos = g.node("CLIPTextEncode", "Positive Prompt", (COL_B, 0), (WIDTH_B, 200), [PROMPT], color=POSITIVE_COLOR)
    y = 250
    positive = (pos, "CONDITIONING")
    if family.guidance is not None:
        guidance = g.node("FluxGuidance", "FluxGuidance", (COL_B, y), (320, 58), [family.guidance])
        positive, y = (guidance, "CONDITIONING"), y + 100
    neg = g.node("CLIPTextEncode", "Negative Prompt (unused at cfg 1)", (COL_B, y), (WIDTH_B, 120), [NEGATIVE],
                 color=NEGATIVE_COLOR)
    latent_type, latent_title = family.latent
    latent = g.node(latent_type, latent_title, (COL_B, y + 170), (320, 106), [RESOLUTION, RESOLUTION, 1])
    g.link(*model, swd_lora, "model")
    for enc in (pos, neg):
        g.link(*clip, enc, "clip")
    if family.guidance is not None:
        g.link(pos, "CONDITIONING", positive[0], "conditioning")
    negative = (neg, "CONDITIONING")
    if conditioning is not None:
        positive, negative = conditioning(g, pos, neg)
    sample_and_save(g, name, (swd_lora, "MODEL"), positive, negative, (latent, "LATENT"), schedule, vae)
    return g


def sample_and_save(g: Graph, name: str, model, positive, negative, latent, schedule, vae) -> tuple:
    """SwD Sampler -> VAE Decode -> Save Image at the right of the graph, wired as every text-to-image
    workflow wires them; ``model``, ``positive``, ``negative``, ``latent``, ``vae`` are sockets.
    Returns ``(sampler, decode, save)``."""
    sampler = g.node("SwDSampler", "SwD Sampler", (COL_C, 0), (WIDTH_C, 262), [SEED, "fixed", 1.0, "bicubic", 1.0])
    decode = g.node("VAEDecode", "VAE Decode", (COL_D, 0), (210, 46))
    save = g.node("SaveImage", "Save Image", (COL_D, 110), (WIDTH_D, 400), [f"swd/{name.removeprefix('swd-')}"])
    for (node, output), socket in ((model, "model"), (positive, "positive"), (negative, "negative"),
                                   (latent, "latent_image"), ((schedule, "schedule"), "schedule")):
        g.link(node, output, sampler, socket)
    g.link(sampler, "LATENT", decode, "samples")
    g.link(*vae, decode, "vae")
    g.link(decode, "IMAGE", save, "images")
    return sampler, decode, save


def add_base_run(g: Graph, title: str, ksampler: list, model, pos: dict, neg: dict, latent: dict, vae,
                 save_title: str, prefix: str) -> None:
    """The base model beside the SwD run: stock KSampler (``ksampler`` widgets) -> VAE Decode -> Save Image,
    on the same prompts and latent; ``model`` and ``vae`` are sockets."""
    base = g.node("KSampler", title, (COL_C, SAMPLER_ROOM), (WIDTH_C, 262), ksampler)
    decode = g.node("VAEDecode", "VAE Decode (base)", (COL_D, 580), (210, 46))
    save = g.node("SaveImage", save_title, (COL_D, 680), (WIDTH_D, 380), [prefix])
    g.link(*model, base, "model")
    g.link(pos, "CONDITIONING", base, "positive")
    g.link(neg, "CONDITIONING", base, "negative")
    g.link(latent, "LATENT", base, "latent_image")
    g.link(base, "LATENT", decode, "samples")
    g.link(*vae, decode, "vae")
    g.link(decode, "IMAGE", save, "images")


def comparison_text(base: str, settings: str, extra: str = "") -> str:
    """The vs-base workflows' "The comparison" section."""
    return (f"\n### The comparison\nThe same prompt, seed ({SEED}) and size through {base}: stock "
            f"**KSampler**, {settings}. The two images are not the same picture (different samplers draw "
            f"different noise): compare quality and time{extra}.\n")
