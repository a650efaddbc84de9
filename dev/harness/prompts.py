"""API-format prompts for the real ComfyUI server: stock loaders + this pack's nodes, on the stand-ins."""
from __future__ import annotations

import copy

from .paths import CLIP_L as CLIP
from .paths import SD3_DIFFUSION_MODEL as UNET
from .paths import SD3_LORA as LORA
from .paths import SD3_VAE as VAE

PRESET = "SD3.5 Large, 6 steps"


def txt2img(*, seed=0, width=128, height=128, batch=1, preset=PRESET, scales="", sigmas="", cfg=1.0,
            lora=LORA, strength=1.0, text="a cat reading a newspaper", prefix="swd", decode=False,
            upscale_method="bicubic") -> dict:
    """UNETLoader + CLIPLoader (sd3) + CLIPTextEncode x2 + [SwDLoraLoader] + SwDSchedule +
    EmptySD3LatentImage + SwDSampler + SaveLatent (+ VAELoader, VAEDecode, SaveImage if ``decode``).

    ``lora=None`` leaves the LoRA loader out (the sampler gets the base model).
    Node ids: unet, clip, pos, neg, lora, sched, latent, sampler, save[, vae, decode, image].
    """
    g = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "sd3"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["clip", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["clip", 0]}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": preset, "scales": scales, "sigmas": sigmas}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height,
                                                                   "batch_size": batch}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["unet", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "schedule": ["sched", 0], "seed": seed, "cfg": cfg, "upscale_method": upscale_method}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": prefix}},
    }
    if lora is not None:
        g["lora"] = {"class_type": "SwDLoraLoader", "inputs": {"model": ["unet", 0], "lora_name": lora,
                                                               "strength_model": strength}}
        g["sampler"]["inputs"]["model"] = ["lora", 0]
    if decode:
        g["vae"] = {"class_type": "VAELoader", "inputs": {"vae_name": VAE}}
        g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}}
        g["image"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return g


def with_inputs(prompt: dict, **changes) -> dict:
    """A copy of ``prompt`` with ``{"node.input": value}`` changes (spelled ``node__input=value``)."""
    g = copy.deepcopy(prompt)
    for path, value in changes.items():
        node, key = path.split("__", 1)
        g[node]["inputs"][key] = value
    return g


def executed_nodes(record: dict) -> set[str]:
    """Node ids the server actually ran for a prompt record of ``ComfyServer.run`` (not from cache)."""
    ran = {m["data"]["node"] for m in record["messages"]
           if m.get("type") == "executing" and m["data"].get("node") is not None}
    cached = set()
    for m in record["messages"]:
        if m.get("type") == "execution_cached":
            cached.update(m["data"].get("nodes", []))
    return ran - cached


def saved_files(record: dict, node: str, kind: str) -> list[dict]:
    """``[{filename, subfolder, type}]`` written by output node ``node`` (``kind``: "latents" or "images")."""
    return record["history"]["outputs"][node][kind]


def error_of(record: dict) -> dict:
    """The ``execution_error`` message data of a prompt record (KeyError-free: {} when none)."""
    for m in record["messages"]:
        if m.get("type") == "execution_error":
            return m["data"]
    return {}
