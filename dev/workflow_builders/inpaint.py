"""Inpainting with SwD (issue #16, "Masked and area conditioning, inpainting"): SD3.5 Large.

The image-to-image graph with the stock **VAE Encode (for Inpainting)** in place of VAE Encode: Load
Image's IMAGE and MASK (the mask a user paints in ComfyUI's mask editor: it is saved as the image's alpha
channel, which Load Image returns as MASK = 1 - alpha) -> VAEEncodeForInpaint -> SwD Sampler at denoise
1.0. ``example.png`` (which ComfyUI ships) has no alpha channel, so until a mask is painted Load Image's
MASK is empty and the picture is the input image: the note says to paint it.
"""
from __future__ import annotations

from . import sd35
from .common import COL_B, by_type, set_note, set_prefix
from .graph import Graph, remove_node

GROW_MASK_BY = 6  # the node's default
DENOISE = 1.0  # the whole schedule: VAEEncodeForInpaint greys the masked pixels, denoise < 1 would keep the grey


def note() -> str:
    return (
        "\n### Inpainting: paint the mask first\n"
        "Right-click **Load Image** -> **Open in MaskEditor**, paint over what should be redrawn, "
        "**Save**. The painted area is the image's alpha channel, which Load Image gives as MASK; "
        "`example.png` has no alpha, so with no painted mask nothing is redrawn (the picture is "
        "the input image). Describe the whole picture, new content included, in the prompt.\n\n"
        f"**VAE Encode (for Inpainting)** (grow_mask_by {GROW_MASK_BY}) greys the masked pixels before "
        "encoding and gives the latent a noise mask. The image sets the output size.\n\n"
        f"**Denoise {DENOISE}** with preset `SD3.5 Large, 6 steps`, all 6 scales: SwD starts from "
        "the first (smallest) scale of the schedule, where the masked area is pure noise; the "
        "sampler's inpainting keeps the input outside the mask at every scale (resized to that "
        "scale, noised with that step's noise) and puts the exact input latent back at the last, "
        "full-size step. Denoise below 1 skips the first scales and starts from the greyed image, "
        "so the grey would show: for a partial redraw use **VAE Encode** + **Set Latent Noise "
        "Mask** with denoise 0.6-0.8 instead.\n\n"
        "Inpainting *models* (FLUX.1 Fill, SDXL inpainting) also work with SwD Sampler, but no SwD "
        "LoRA was made for them (see docs/use-with.md, *...masks, areas, inpainting*).\n")


def build(name: str) -> Graph:
    g = sd35.build_img2img(name)
    nodes = by_type(g)
    load, sampler = nodes["LoadImage"], nodes["SwDSampler"]
    # VAE Encode (for Inpainting) takes VAE Encode's place and Load Image's MASK
    remove_node(g, nodes["VAEEncode"])
    load["title"] = "Load Image (paint the mask first)"
    encode = g.node("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", (COL_B, 820), (320, 98), [GROW_MASK_BY])
    g.link(load, "IMAGE", encode, "pixels")
    g.link(nodes["CheckpointLoaderSimple"], "VAE", encode, "vae")
    g.link(load, "MASK", encode, "mask")
    g.link(encode, "LATENT", sampler, "latent_image")
    sampler["widgets_values"][4] = DENOISE
    set_note(g, sd35.note_text("large", 6).replace(sd35.HEADING, f"{sd35.HEADING}: inpainting", 1) + note())
    set_prefix(g, "swd/large-6-steps-inpaint")
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-sd3.5-large-inpaint": build("swd-sd3.5-large-inpaint")}
