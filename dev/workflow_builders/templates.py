"""The template browser's cards: the order a new user needs the workflows in, a one-line description each,
and a thumbnail ``workflows/<name>.jpg`` drawn here.

What the frontends read (1.32.9 with ComfyUI 0.3.75 and 1.49.6 with ComfyUI 0.33, from their JS and
``app/custom_node_manager.py``): the server lists a pack's ``example_workflows/`` (or the legacy
``workflows/``) as bare file names, in the folder's listing order; for each name the frontend makes a card
titled with the name, its description the name with ``-``/``_`` as spaces, and its thumbnail
``/api/workflow_templates/<pack>/<name>.jpg`` (JPEG only, no ``-1`` suffix for packs). Neither reads an
index or metadata for a pack's templates, and the listing order is the file system's (``glob``: hash order on
ext4), so the order and the description are drawn INTO the thumbnail (a number and a line of text), and the
pack's web extension puts the cards in this order (``web/templates.json``, written from :data:`TEMPLATES`;
``web/swd.js`` sorts the pack's names as the frontend fetches them). An open frontend pull request
(Comfy-Org/ComfyUI_frontend#9284, 2026-02) would read titles and descriptions from an ``index.json`` in that
folder; ComfyUI 0.3.75 and 0.33 would list such a file as a workflow named "index", so none is shipped.

The picture is honest about the stand-in weights (they draw noise): it is the workflow's SwD schedule, one
square per step at that step's latent size to scale, the last one the full size, with the cost of the steps
in full-size steps (latent pixels summed: a lower bound of the compute, attention grows faster).
"""
from __future__ import annotations

import io
import json
import textwrap

from PIL import Image, ImageDraw, ImageFont

from harness.paths import ROOT
from swd_core import PRESETS

from .graph import Graph

SIZE = 256
#: the cards in the order a new user needs them: (file stem, title on the picture, one-line description)
TEMPLATES = [
    ("swd-sd3.5-large-6-steps", "SD3.5 Large, 6 steps",
     "Start here: SD3.5 Large with the SwD LoRA, 6 steps at 1024x1024."),
    ("swd-sd3.5-large-4-steps", "SD3.5 Large, 4 steps", "SD3.5 Large with the 4-step SwD LoRA: faster, a bit softer."),
    ("swd-sd3.5-medium-6-steps", "SD3.5 Medium, 6 steps", "SD3.5 Medium with its 6-step SwD LoRA."),
    ("swd-sd3.5-medium-4-steps", "SD3.5 Medium, 4 steps", "SD3.5 Medium with its 4-step SwD LoRA."),
    ("swd-flux1-dev-4-steps", "FLUX.1-dev, 4 steps", "FLUX.1-dev with the SwD LoRA, 4 steps, FluxGuidance 4.5."),
    ("swd-flux1-dev-4-steps-fp8", "FLUX.1-dev fp8", "FLUX.1-dev in fp8 with the SwD LoRA: about half the memory."),
    ("swd-sdxl-4-steps", "SDXL, 4 steps", "SDXL base with the SwD LoRA, 4 steps."),
    ("swd-flux1-dev-gguf", "FLUX.1-dev GGUF", "FLUX.1-dev Q8_0 GGUF (ComfyUI-GGUF) with the SwD LoRA, 4 steps."),
    ("swd-sd3.5-large-6-steps-split-files", "SD3.5 split files",
     "SD3.5 Large from separate diffusion model, text encoder and VAE files."),
    ("swd-sd3.5-large-6-steps-img2img", "SD3.5 img2img", "Image to image: SwD from a start image at denoise 0.8."),
    ("swd-sd3.5-large-inpaint", "SD3.5 inpainting", "Inpainting: paint a mask, SwD redraws it at every scale."),
    ("swd-sd3.5-large-controlnet", "SD3.5 ControlNet", "SD3.5 Large + SwD with a canny ControlNet."),
    ("swd-flux1-dev-controlnet", "FLUX ControlNet", "FLUX.1-dev + SwD with XLabs' canny ControlNet."),
    ("swd-sdxl-4-steps-controlnet", "SDXL ControlNet", "SDXL + SwD with a canny ControlNet."),
    ("swd-sd3.5-large-vs-base", "SD3.5 vs base", "SwD 6 steps beside SD3.5 Large alone at 28 steps."),
    ("swd-flux1-dev-4-steps-vs-base", "FLUX vs base", "SwD 4 steps beside FLUX.1-dev alone at 30 steps."),
    ("swd-sdxl-4-steps-vs-base", "SDXL vs base", "SwD 4 steps beside SDXL base alone at 30 steps."),
    ("swd-sd3.5-large-6-steps-sampler-custom-advanced", "SamplerCustomAdvanced",
     "SwD as a SAMPLER for SamplerCustomAdvanced, with the schedule's sigmas."),
    ("swd-sd3.5-large-merge-lora", "Merge the LoRA", "Bake the SwD LoRA into an SD3.5 Large checkpoint."),
]
#: the card order the web extension reads (served at /extensions/<pack>/templates.json)
ORDER_FILE = ROOT / "web" / "templates.json"
DEFAULT_PRESET = "SD3.5 Large, 6 steps"  # the merge workflow has no schedule: it bakes this one's LoRA
COLORS = ["#3b6ea8", "#4a86c5", "#5aa0d8", "#6fb8e0", "#8fd0e8", "#f0c060"]


def preset_of(graph: Graph) -> str:
    schedule = next((n for n in graph.nodes if n["type"] == "SwDSchedule"), None)
    return schedule["widgets_values"][0] if schedule else DEFAULT_PRESET


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def thumbnail(order: int, title: str, description: str, preset: str) -> bytes:
    """The card's picture (JPEG): the order number, the title, the schedule's latent sizes to scale, the
    cost in full-size steps, and the description."""
    scales = PRESETS[preset].scales
    image = Image.new("RGB", (SIZE, SIZE), "#1c1f24")
    draw = ImageDraw.Draw(image)
    # the top left stays empty: 1.49.6 lays its "Node graph" badge over the card's top-left 120x40 pixels
    draw.ellipse((SIZE - 44, 8, SIZE - 12, 40), fill="#f0c060" if order == 1 else "#50565e")
    draw.text((SIZE - 28, 24), str(order), fill="#101010", font=_font(18), anchor="mm")
    draw.text((16, 46), title, fill="#f2f2f2", font=_font(16))
    box, left, bottom = 112, 16, 194
    for i, scale in enumerate(scales):  # one square per step, the latent's side to scale
        side = round(box * scale / scales[-1])
        color = COLORS[-1] if i == len(scales) - 1 else COLORS[i % (len(COLORS) - 1)]
        draw.rectangle((left, bottom - side, left + side, bottom), outline=color, width=2)
    cost = sum((s / scales[-1]) ** 2 for s in scales)
    small = _font(12)
    text_x = left + box + 14
    lines = [f"{len(scales)} steps", f"latent {scales[0]} -> {scales[-1]}", f"cost ~{cost:.1f}", "full-size steps"]
    for k, line in enumerate(lines):
        draw.text((text_x, 104 + 16 * k), line, fill="#c8c8c8", font=small)
    draw.text((left, bottom + 4), "schedule: latent size per step", fill="#8a9099", font=small)
    for k, line in enumerate(textwrap.wrap(description, 36)[:2]):
        draw.text((left, 218 + 16 * k), line, fill="#e6e6e6", font=small)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def order_json() -> str:
    """``web/templates.json``: the workflows' file stems in card order."""
    return json.dumps({"order": [name for name, _, _ in TEMPLATES]}, indent=2) + "\n"


def thumbnails(graphs: dict[str, Graph]) -> dict[str, bytes]:
    """``{file stem: JPEG}`` for every workflow; every workflow must be in :data:`TEMPLATES`."""
    names = [name for name, _, _ in TEMPLATES]
    if sorted(names) != sorted(graphs):
        raise ValueError(f"TEMPLATES and the workflows differ: {sorted(set(names) ^ set(graphs))}")
    return {name: thumbnail(i + 1, title, description, preset_of(graphs[name]))
            for i, (name, title, description) in enumerate(TEMPLATES)}
