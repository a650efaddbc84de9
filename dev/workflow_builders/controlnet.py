"""ControlNet with SwD (issue #16, "ControlNet across scales"): SD3.5 Large, FLUX.1-dev and SDXL, each
with a canny ControlNet between the prompts and SwD Sampler: Load Image (``example.png``, which ComfyUI
ships) -> Canny -> Apply ControlNet (``ControlNetApplyAdvanced``) <- Load ControlNet Model. SD3.5
ControlNets take a VAE-encoded hint (the checkpoint's VAE is connected); XLabs' FLUX canny takes pixels
(the FLUX VAE is connected for InstantX-style ControlNets); SDXL ControlNets take pixels (no VAE).
"""
from __future__ import annotations

from . import flux, sd35, sdxl
from .common import (
    COL_B,
    COL_C,
    HF,
    IMAGE,
    SAMPLER_ROOM,
    WIDTH_B,
    WIDTH_C,
    by_type,
    model_files,
    prompts,
    retitle_note,
    set_prefix,
)
from .graph import Graph, renumber_links

CONTROLNET_REPO = f"{HF}/stabilityai/stable-diffusion-3.5-controlnets"
CONTROLNET = ("sd3.5_large_controlnet_canny.safetensors",
              f"{CONTROLNET_REPO}/resolve/main/sd3.5_large_controlnet_canny.safetensors")
CANNY = (0.4, 0.8)  # the Canny node's defaults
STRENGTH = 1.0  # Apply ControlNet's default

FLUX_CONTROLNET_REPO = f"{HF}/XLabs-AI/flux-controlnet-canny-v3"
FLUX_CONTROLNET = ("flux-canny-controlnet-v3.safetensors",
                   f"{FLUX_CONTROLNET_REPO}/resolve/main/flux-canny-controlnet-v3.safetensors")
INSTANTX_CANNY_REPO = f"{HF}/InstantX/FLUX.1-dev-Controlnet-Canny"

#: diffusers' SDXL canny ControlNet, in its own folder under ``models/controlnet/`` (its file name is generic);
#: ComfyUI's ControlNetLoader reads the diffusers layout and detects SDXL from it.
SDXL_CONTROLNET_REPO = "diffusers/controlnet-canny-sdxl-1.0"
SDXL_CONTROLNET = ("controlnet-canny-sdxl-1.0/diffusion_pytorch_model.fp16.safetensors",
                   f"{HF}/{SDXL_CONTROLNET_REPO}/resolve/main/diffusion_pytorch_model.fp16.safetensors")


def note(extra_steps: str = "") -> str:
    return (
        "\n### ControlNet (canny)\n"
        + model_files([(f"`{CONTROLNET[0]}`", "`ComfyUI/models/controlnet/`",
                        f"[stabilityai/stable-diffusion-3.5-controlnets]({CONTROLNET_REPO}) "
                        f"([file]({CONTROLNET[1]}))")])
        + "\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** (with the checkpoint's VAE: SD3.5 ControlNets "
        "take a VAE-encoded hint). Depth and blur: load `sd3.5_large_controlnet_depth.safetensors` / "
        "`_blur` from the same repository and give them a depth map / blurred image instead of Canny.\n\n"
        "**Across scales**: the ControlNet's hint follows the latent's size. ComfyUI resizes the hint "
        "image and VAE-encodes it again whenever the size changes, so each of SwD's 6 scales costs one "
        "extra VAE encode (about 2.4 times one full-size encode in all).\n"
        "The ControlNet was trained with the base model at cfg above 1; with the SwD LoRA at cfg 1 it is "
        "untested on the real weights here: lower the strength if the image degrades.\n" + extra_steps)


def flux_note() -> str:
    return (
        "\n### ControlNet (canny)\n"
        + model_files([(f"`{FLUX_CONTROLNET[0]}`", "`ComfyUI/models/controlnet/`",
                        f"[XLabs-AI/flux-controlnet-canny-v3]({FLUX_CONTROLNET_REPO}) ([file]({FLUX_CONTROLNET[1]}))")])
        + "\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** -> SwD Sampler. XLabs' ControlNets take the hint as "
        "pixels (ComfyUI ignores the VAE for them); the VAE is connected for ControlNets that take a "
        f"VAE-encoded hint, such as [InstantX's canny]({INSTANTX_CANNY_REPO}) "
        "(`diffusion_pytorch_model.safetensors`, rename it) or the InstantX/Shakker-Labs union ControlNets: "
        "pick one of those in Load ControlNet Model and nothing else changes.\n\n"
        "**Across scales**: the ControlNet's hint follows the latent's size. ComfyUI resizes the hint image "
        "whenever the size changes (and VAE-encodes it again for InstantX-style ControlNets), once per scale.\n"
        "The ControlNet was trained with FLUX.1-dev itself (guidance about 4, 20+ steps); with the SwD LoRA at "
        "4 steps it is untested on the real weights here: lower the strength if the image degrades.\n")


def sdxl_note() -> str:
    folder, file = SDXL_CONTROLNET[0].split("/")
    return (
        "\n### ControlNet (canny)\n"
        + model_files([(f"`{file}`", f"`ComfyUI/models/controlnet/{folder}/`",
                        f"[{SDXL_CONTROLNET_REPO}]({HF}/{SDXL_CONTROLNET_REPO}) ([file]({SDXL_CONTROLNET[1]}))")])
        + "\n\n"
        "Load Image -> **Canny** -> **Apply ControlNet** (no VAE: SDXL ControlNets take the image itself). "
        "Any SDXL ControlNet that ComfyUI's **Load ControlNet Model** reads works the same way (other "
        "preprocessors for depth, pose...).\n\n"
        "**Across scales**: ComfyUI resizes the hint image to the latent's size whenever it changes, so each "
        "of SwD's 4 scales gets the hint at its own size (no VAE encode for SDXL ControlNets).\n"
        "The ControlNet was trained with SDXL base at cfg above 1; with the SwD LoRA at cfg 1 it is untested on "
        "the real weights here: lower the strength if the image degrades.\n")


def add_canny_controlnet(g: Graph, positive, negative, title: str, controlnet: tuple, vae=None,
                         image_y: int = 600, loader_width: int = 440) -> dict:
    """Load ControlNet Model (``controlnet``: file name, URL) + Load Image (``example.png``) -> Canny ->
    Apply ControlNet (``ControlNetApplyAdvanced``) fed by the ``positive`` / ``negative`` CONDITIONING
    nodes; returns the Apply node (outputs ``positive``, ``negative``). ``vae``: the node whose VAE encodes
    the hint (SD3.5, InstantX-layout FLUX ControlNets), or None: the optional input is left out (SDXL).
    Apply ControlNet, Canny and the loader go under the sampler; Load Image at ``image_y`` under the latent."""
    loader = g.node("ControlNetLoader", title, (COL_C, SAMPLER_ROOM + 380), (loader_width, 58), [controlnet[0]],
                    models=[(controlnet[0], controlnet[1], "controlnet")])
    image = g.node("LoadImage", "Load Image (control image)", (COL_B, image_y), (WIDTH_B, 330), [IMAGE, "image"])
    canny = g.node("Canny", "Canny edges (the hint)", (COL_C, SAMPLER_ROOM + 250), (WIDTH_C, 82), list(CANNY))
    apply = g.node("ControlNetApplyAdvanced", "Apply ControlNet", (COL_C, SAMPLER_ROOM), (WIDTH_C, 186 if vae else 166),
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


def _reroute_through(g: Graph, sampler: dict, positive: dict, negative: dict, apply_args: dict) -> None:
    """Cut ``positive`` / ``negative`` -> ``sampler`` and put a canny ControlNet between them."""
    g.links = [link for link in g.links if not (link[3] == sampler["id"] and link[1] in (positive["id"],
                                                                                          negative["id"]))]
    renumber_links(g)
    apply = add_canny_controlnet(g, positive, negative, **apply_args)
    g.link(apply, "positive", sampler, "positive")
    g.link(apply, "negative", sampler, "negative")


def build_sd35(name: str) -> Graph:
    g = sd35.build(name)
    nodes = by_type(g)
    pos, neg = prompts(g)
    _reroute_through(g, nodes["SwDSampler"], pos, neg, dict(
        title="Load ControlNet Model (SD3.5 canny)", controlnet=CONTROLNET, vae=nodes["CheckpointLoaderSimple"]))
    retitle_note(g, sd35.HEADING, "ControlNet", note())
    set_prefix(g, "swd/large-6-steps-controlnet")
    return g


def build_flux(name: str) -> Graph:
    """FLUX.1-dev + SwD (4 steps) with XLabs' canny ControlNet between the prompts and SwD Sampler."""
    g = flux.build(name, "bf16")
    nodes = by_type(g)
    _, neg = prompts(g)
    _reroute_through(g, nodes["SwDSampler"], nodes["FluxGuidance"], neg, dict(
        title="Load ControlNet Model (FLUX canny)", controlnet=FLUX_CONTROLNET, vae=nodes["VAELoader"],
        image_y=690))
    retitle_note(g, flux.HEADING, "ControlNet", flux_note())
    set_prefix(g, "swd/flux1-dev-controlnet")
    return g


def build_sdxl(name: str) -> Graph:
    """SwD SDXL with a canny ControlNet: Load Image (``example.png``) -> Canny -> Apply ControlNet
    (``ControlNetApplyAdvanced``, no VAE: SDXL ControlNets take the pixel hint) <- Load ControlNet Model."""
    def controlnet(g: Graph, pos: dict, neg: dict):
        apply = add_canny_controlnet(g, pos, neg, "Load ControlNet Model (SDXL canny)", SDXL_CONTROLNET,
                                     loader_width=560)  # the file's name is long: its label must not be cut
        return (apply, "positive"), (apply, "negative")

    g = sdxl.build(name, controlnet)
    retitle_note(g, sdxl.HEADING, "ControlNet", sdxl_note())
    return g


def build_all() -> dict[str, Graph]:
    return {"swd-sd3.5-large-controlnet": build_sd35("swd-sd3.5-large-controlnet"),
            "swd-flux1-dev-controlnet": build_flux("swd-flux1-dev-controlnet"),
            "swd-sdxl-4-steps-controlnet": build_sdxl("swd-sdxl-4-steps-controlnet")}
