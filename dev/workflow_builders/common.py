"""What every family's workflows share: the prompt, seed and size, the schedule node's text fields, the
graph helpers, and the one text-to-image builder each family parameterises with a :class:`Family`.

Imports no family module: ``sd35``, ``flux``, ``sdxl`` and the combinations (``controlnet``,
``inpaint``) import this one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .graph import Graph

HF = "https://huggingface.co"
RESOLUTION = 1024
SEED = 42
PROMPT = ("a red fox sitting in a snowy birch forest at golden hour, soft rim light, "
          "detailed fur, shallow depth of field, professional photograph")
NEGATIVE = ""
# SwD Schedule's text fields (used only with preset "custom"): the node's defaults
CUSTOM_SCALES = "32, 48, 64, 80, 96, 128"
CUSTOM_SIGMAS = "1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0"
IMAGE = "example.png"  # ComfyUI ships input/example.png: the start image and the ControlNet hint

NOTE_COLOR = ("#432", "#653")
POSITIVE_COLOR = ("#232", "#353")
NEGATIVE_COLOR = ("#322", "#533")

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
    130 below). ``guidance`` (FLUX's embedded guidance) puts a FluxGuidance node between the positive
    prompt and the sampler. ``latent`` is the empty latent's ``(type, title)``.
    """

    note: str
    note_size: tuple[int, int]
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
    g.node("MarkdownNote", "Model files", (-520, 0), family.note_size, [family.note], color=NOTE_COLOR)
    model, clip, vae = family.loaders(g)
    lora_name, lora_url = family.lora
    swd_lora = g.node("SwDLoraLoader", "SwD LoRA Loader", (0, family.lora_y), (380, 82), [lora_name, 1.0],
                      models=[(lora_name, lora_url, "loras")])
    schedule = g.node("SwDSchedule", "SwD Schedule", (0, family.lora_y + 130), (380, 106),
                      [family.preset, CUSTOM_SCALES, CUSTOM_SIGMAS])
    pos = g.node("CLIPTextEncode", "Positive Prompt", (430, 0), (420, 200), [PROMPT], color=POSITIVE_COLOR)
    y = 250
    positive = (pos, "CONDITIONING")
    if family.guidance is not None:
        guidance = g.node("FluxGuidance", "FluxGuidance", (430, y), (320, 58), [family.guidance])
        positive, y = (guidance, "CONDITIONING"), y + 100
    neg = g.node("CLIPTextEncode", "Negative Prompt (unused at cfg 1)", (430, y), (420, 120), [NEGATIVE],
                 color=NEGATIVE_COLOR)
    latent_type, latent_title = family.latent
    latent = g.node(latent_type, latent_title, (430, y + 170), (320, 106), [RESOLUTION, RESOLUTION, 1])
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


def add_base_run(g: Graph, title: str, ksampler: list, model, pos: dict, neg: dict, latent: dict, vae,
                 save_title: str, prefix: str) -> None:
    """The base model beside the SwD run: stock KSampler (``ksampler`` widgets) -> VAE Decode -> Save Image,
    on the same prompts and latent; ``model`` and ``vae`` are sockets."""
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


def comparison_text(base: str, settings: str, extra: str = "") -> str:
    """The vs-base workflows' "The comparison" section."""
    return (f"\n### The comparison\nThe same prompt, seed ({SEED}) and size through {base}: stock "
            f"**KSampler**, {settings}. The two images are not the same picture (different samplers draw "
            f"different noise): compare quality and time{extra}.\n")
