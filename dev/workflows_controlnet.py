"""The ControlNet workflows (issue #16, "ControlNet across scales"): SD3.5 Large and FLUX.1-dev with SwD.

``build_controlnet(name)`` and ``build_flux_controlnet(name)`` are registered by
``make_workflows.build_all``. The first is the Large 6-step text-to-image graph with Stability's canny
ControlNet between the prompts and SwD Sampler: Load Image (``example.png``, which ComfyUI ships) ->
Canny -> Apply ControlNet (``ControlNetApplyAdvanced`` with the checkpoint's VAE: SD3 ControlNets take
a VAE-encoded hint) <- Load ControlNet Model. The second is the FLUX.1-dev 4-step graph with XLabs'
canny v3 the same way (pixel hint; the FLUX VAE is connected for InstantX-style ControlNets).
"""
from __future__ import annotations

import make_workflows as mw
from workflow_graph import NODE_TYPES, _renumber_links

NODE_TYPES.update({
    "ControlNetLoader": dict(inputs=[], widgets=["control_net_name"], outputs=[("CONTROL_NET", "CONTROL_NET")]),
    "Canny": dict(inputs=[("image", "IMAGE")], widgets=["low_threshold", "high_threshold"],
                  outputs=[("IMAGE", "IMAGE")]),
    # the optional VAE is a socket after the required ones (the frontend lists optional inputs too)
    "ControlNetApplyAdvanced": dict(
        inputs=[("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("control_net", "CONTROL_NET"),
                ("image", "IMAGE"), ("vae", "VAE")],
        widgets=["strength", "start_percent", "end_percent"],
        outputs=[("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
})

CONTROLNET_REPO = f"{mw.HF}/stabilityai/stable-diffusion-3.5-controlnets"
CONTROLNET = ("sd3.5_large_controlnet_canny.safetensors",
              f"{CONTROLNET_REPO}/resolve/main/sd3.5_large_controlnet_canny.safetensors")
CANNY = (0.4, 0.8)  # the Canny node's defaults
STRENGTH = 1.0  # Apply ControlNet's default


def note(extra_steps: str = "") -> str:
    return (
        "\n### ControlNet (canny)\n"
        f"| file | folder | from |\n|---|---|---|\n"
        f"| `{CONTROLNET[0]}` | `ComfyUI/models/controlnet/` | "
        f"[stabilityai/stable-diffusion-3.5-controlnets]({CONTROLNET_REPO}) ([file]({CONTROLNET[1]})) |\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** (with the checkpoint's VAE: SD3.5 ControlNets "
        "take a VAE-encoded hint). Depth and blur: load `sd3.5_large_controlnet_depth.safetensors` / "
        "`_blur` from the same repository and give them a depth map / blurred image instead of Canny.\n\n"
        "**Across scales**: the ControlNet's hint follows the latent's size. ComfyUI resizes the hint "
        "image and VAE-encodes it again whenever the size changes, so each of SwD's 6 scales costs one "
        "extra VAE encode (about 2.4 times one full-size encode in all).\n"
        "The ControlNet was trained with the base model at cfg above 1; with the SwD LoRA at cfg 1 it is "
        "untested on the real weights here: lower the strength if the image degrades.\n" + extra_steps)


def add_canny_controlnet(g: mw.Graph, positive, negative, title: str, controlnet: tuple, vae=None,
                         top: int = 600, apply_y: int = 330) -> dict:
    """Load ControlNet Model (``controlnet``: file name, URL) + Load Image (``example.png``) -> Canny ->
    Apply ControlNet (``ControlNetApplyAdvanced``) fed by the ``positive`` / ``negative`` CONDITIONING
    nodes; returns the Apply node (outputs ``positive``, ``negative``). ``vae``: the node whose VAE encodes
    the hint (SD3.5, InstantX-layout FLUX ControlNets), or None: the optional input is left out (SDXL)."""
    loader = g.node("ControlNetLoader", title, (430, top), (380, 58), [controlnet[0]],
                    models=[(controlnet[0], controlnet[1], "controlnet")])
    image = g.node("LoadImage", "Load Image (control image)", (430, top + 100), (320, 360),
                   [mw.IMG2IMG_IMAGE, "image"])
    canny = g.node("Canny", "Canny", (430, top + 510), (320, 82), list(CANNY))
    apply = g.node("ControlNetApplyAdvanced", "Apply ControlNet", (900, apply_y), (320, 186 if vae else 166),
                   [STRENGTH, 0.0, 1.0])
    if vae is None:
        apply["inputs"] = [i for i in apply["inputs"] if i["name"] != "vae"]
    g.link(positive, "CONDITIONING", apply, "positive")
    g.link(negative, "CONDITIONING", apply, "negative")
    g.link(loader, "CONTROL_NET", apply, "control_net")
    g.link(image, "IMAGE", canny, "image")
    g.link(canny, "IMAGE", apply, "image")
    if vae is not None:
        g.link(vae, "VAE", apply, "vae")
    return apply


def build_controlnet(name: str) -> mw.Graph:
    g = mw.build_txt2img(name, "large", 6)
    by_type = mw._by_type(g)
    sampler, ckpt = by_type["SwDSampler"], by_type["CheckpointLoaderSimple"]
    pos, neg = [n for n in g.nodes if n["type"] == "CLIPTextEncode"]
    # the prompts go through Apply ControlNet instead of straight into the sampler
    g.links = [link for link in g.links if not (link[3] == sampler["id"] and link[1] in (pos["id"], neg["id"]))]
    _renumber_links(g)
    apply = add_canny_controlnet(g, pos, neg, "Load ControlNet Model (SD3.5 canny)", CONTROLNET, vae=ckpt)
    g.link(apply, "positive", sampler, "positive")
    g.link(apply, "negative", sampler, "negative")
    mw._note(g, "ControlNet", note())
    by_type["SaveImage"]["widgets_values"][0] = "swd/large-6-steps-controlnet"
    return g


# --------------------------------------------------------------------------- FLUX.1-dev

FLUX_CONTROLNET_REPO = f"{mw.HF}/XLabs-AI/flux-controlnet-canny-v3"
FLUX_CONTROLNET = ("flux-canny-controlnet-v3.safetensors",
                   f"{FLUX_CONTROLNET_REPO}/resolve/main/flux-canny-controlnet-v3.safetensors")
INSTANTX_CANNY_REPO = f"{mw.HF}/InstantX/FLUX.1-dev-Controlnet-Canny"


def flux_note() -> str:
    return (
        "\n### ControlNet (canny)\n"
        f"| file | folder | from |\n|---|---|---|\n"
        f"| `{FLUX_CONTROLNET[0]}` | `ComfyUI/models/controlnet/` | "
        f"[XLabs-AI/flux-controlnet-canny-v3]({FLUX_CONTROLNET_REPO}) ([file]({FLUX_CONTROLNET[1]})) |\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** -> SwD Sampler. XLabs' ControlNets take the hint as "
        "pixels (ComfyUI ignores the VAE for them); the VAE is connected for ControlNets that take a "
        f"VAE-encoded hint, such as [InstantX's canny]({INSTANTX_CANNY_REPO}) "
        "(`diffusion_pytorch_model.safetensors`, rename it) or the InstantX/Shakker-Labs union ControlNets: "
        "pick one of those in Load ControlNet Model and nothing else changes.\n\n"
        "**Across scales**: the ControlNet's hint follows the latent's size. ComfyUI resizes the hint image "
        "whenever the size changes (and VAE-encodes it again for InstantX-style ControlNets), once per scale.\n"
        "The ControlNet was trained with FLUX.1-dev itself (guidance about 4, 20+ steps); with the SwD LoRA at "
        "4 steps it is untested on the real weights here: lower the strength if the image degrades.\n")


def build_flux_controlnet(name: str) -> mw.Graph:
    """FLUX.1-dev + SwD (4 steps) with XLabs' canny ControlNet between the prompts and SwD Sampler."""
    import workflows_flux

    g = workflows_flux.build_flux(name, "bf16")
    by_type = mw._by_type(g)
    sampler, vae, guidance = by_type["SwDSampler"], by_type["VAELoader"], by_type["FluxGuidance"]
    neg = next(n for n in g.nodes if n["type"] == "CLIPTextEncode" and n["title"].startswith("Negative"))
    g.links = [link for link in g.links if not (link[3] == sampler["id"] and link[1] in (guidance["id"], neg["id"]))]
    _renumber_links(g)
    apply = add_canny_controlnet(g, guidance, neg, "Load ControlNet Model (FLUX canny)", FLUX_CONTROLNET, vae=vae,
                                 top=680, apply_y=320)
    g.link(apply, "positive", sampler, "positive")
    g.link(apply, "negative", sampler, "negative")
    note = mw._by_type(g)["MarkdownNote"]
    note["widgets_values"][0] = note["widgets_values"][0].replace(
        "## SwD: FLUX.1-dev, 4 steps", "## SwD: FLUX.1-dev, 4 steps: ControlNet", 1) + flux_note()
    mw._by_type(g)["SaveImage"]["widgets_values"][0] = "swd/flux1-dev-controlnet"
    return g
