"""The inpainting workflow (issue #16, "Masked and area conditioning, inpainting"): SD3.5 Large + SwD.

``build_inpaint(name)`` is registered by ``make_workflows.build_all``. It is the image-to-image graph
with the stock **VAE Encode (for Inpainting)** in place of VAE Encode: Load Image's IMAGE and MASK
(the mask a user paints in ComfyUI's mask editor: it is saved as the image's alpha channel, which
Load Image returns as MASK = 1 - alpha) -> VAEEncodeForInpaint -> SwD Sampler at denoise 1.0.
``example.png`` (which ComfyUI ships) has no alpha channel, so until a mask is painted Load Image's
MASK is empty and the picture is the input image: the note says to paint it.
"""
from __future__ import annotations

import make_workflows as mw
from workflow_graph import NODE_TYPES, _renumber_links

NODE_TYPES.update({
    "VAEEncodeForInpaint": dict(inputs=[("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK")],
                                widgets=["grow_mask_by"], outputs=[("LATENT", "LATENT")]),
})

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


def build_inpaint(name: str) -> mw.Graph:
    g = mw.build_img2img(name)
    by_type = mw._by_type(g)
    load, sampler, ckpt = by_type["LoadImage"], by_type["SwDSampler"], by_type["CheckpointLoaderSimple"]
    # VAE Encode (for Inpainting) takes VAE Encode's place and Load Image's MASK
    old = by_type["VAEEncode"]
    g.nodes.remove(old)
    g.links = [link for link in g.links if old["id"] not in (link[1], link[3])]
    _renumber_links(g)
    load["title"] = "Load Image (paint the mask: right-click -> Open in MaskEditor)"
    encode = g.node("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", (430, 830), (320, 98), [GROW_MASK_BY])
    g.link(load, "IMAGE", encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    g.link(load, "MASK", encode, "mask")
    g.link(encode, "LATENT", sampler, "latent_image")
    sampler["widgets_values"][4] = DENOISE
    by_type["MarkdownNote"]["widgets_values"][0] = mw.note_text("large", 6).replace(
        "## SwD: SD3.5 Large, 6 steps", "## SwD: SD3.5 Large, 6 steps: inpainting", 1) + note()
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-inpaint"
    return g
