"""SDXL from split files: Load Diffusion Model (``UNETLoader``) + ``DualCLIPLoader`` (type sdxl, CLIP-L +
CLIP-G) + ``VAELoader`` give what the single checkpoint gives, through SwD LoRA Loader + SwD Sampler.

The split stand-ins are cut from the SDXL checkpoint stand-in at setup (``harness.standins.sdxl.split_files``:
the UNet and the VAE in the LDM layout, CLIP-G converted to the transformers layout by ComfyUI's own
``process_clip_state_dict``; CLIP-L is the ``CLIP_L`` stand-in). Same weights, so everything is compared
exactly. Stock nodes, called directly (the executor runs the same calls; one CLIP-G load per side here).
fp8 SDXL (UNETLoader fp8_e4m3fn on the split UNet, an fp8 checkpoint) is in ``test_fp8_layouts.py``.
"""
import pytest
import safetensors.torch
import torch

from harness import paths
from harness.standins import sdxl

PRESET = "SDXL, 4 steps"
PROMPT = "a lighthouse at dusk"


def encode(host, clip, text):
    return host.node("CLIPTextEncode")().encode(clip, text)[0]


@pytest.fixture(scope="module")
def loaded(host):
    """``{"checkpoint" | "split": (model, positive, negative, vae)}`` from the stock loaders."""
    import comfy.model_management

    model, clip, vae = host.node("CheckpointLoaderSimple")().load_checkpoint(paths.SDXL_CHECKPOINT)[:3]
    out = {"checkpoint": (model, encode(host, clip, PROMPT), encode(host, clip, ""), vae)}
    del clip
    unet = host.node("UNETLoader")().load_unet(paths.SDXL_DIFFUSION_MODEL, "default")[0]
    clip = host.node("DualCLIPLoader")().load_clip(paths.CLIP_L, paths.SDXL_CLIP_G, "sdxl")[0]
    vae = host.node("VAELoader")().load_vae(paths.SDXL_VAE)[0]
    out["split"] = (unet, encode(host, clip, PROMPT), encode(host, clip, ""), vae)
    yield out
    comfy.model_management.unload_all_models()


def swd_latent(host, model, positive, negative, seed=11, cfg=1.0, lora=1.0):
    if lora is not None:
        model = host.node("SwDLoraLoader").execute(model, paths.SDXL_LORA, lora).args[0]
    schedule = host.swd_core.PRESETS[PRESET]
    latent = {"samples": torch.zeros(1, 4, 24, 32)}
    return host.node("SwDSampler").execute(model, positive, negative, latent, schedule, seed, cfg,
                                           "bicubic").args[0]["samples"]


def test_split_files_are_cut_from_the_checkpoint():
    """The files on disk are the checkpoint's tensors under the split layouts' names, nothing else."""
    ckpt = safetensors.torch.load_file(paths.MODELS / sdxl.CHECKPOINT_FILE)
    files = {rel: safetensors.torch.load_file(paths.MODELS / rel) for rel in sdxl.split_files({})}
    unet, vae = files[sdxl.DIFFUSION_MODEL_FILE], files[sdxl.VAE_FILE]
    assert unet.keys() == {k.removeprefix("model.diffusion_model.") for k in ckpt if k.startswith("model.")}
    assert all(torch.equal(v, ckpt[f"model.diffusion_model.{k}"]) for k, v in unet.items())
    assert all(torch.equal(v, ckpt[f"first_stage_model.{k}"]) for k, v in vae.items())
    clip_g = files[sdxl.CLIP_G_FILE]
    assert "text_model.encoder.layers.31.mlp.fc1.weight" in clip_g and clip_g["text_projection.weight"].shape == (
        sdxl.POOLED_FEATURES, 1280)
    # OpenCLIP's text_projection is stored transposed in the checkpoint (x @ P); the file holds a Linear weight
    assert torch.equal(clip_g["text_projection.weight"], ckpt["conditioner.embedders.1.model.text_projection"].T)
    size = sum((paths.MODELS / rel).stat().st_size for rel in files)
    assert size < (paths.MODELS / sdxl.CHECKPOINT_FILE).stat().st_size  # no CLIP-L copy, no padding


def test_split_loaders_detect_sdxl(loaded):
    import comfy.model_base

    unet, positive, _, vae = loaded["split"]
    assert type(unet.model) is comfy.model_base.SDXL
    assert isinstance(unet.model.diffusion_model, type(loaded["checkpoint"][0].model.diffusion_model))
    assert positive[0][0].shape == (1, 77, 2048) and positive[0][1]["pooled_output"].shape == (1, 1280)
    assert type(vae.first_stage_model) is type(loaded["checkpoint"][3].first_stage_model)


def test_split_files_give_the_checkpoints_conditioning_and_latent(host, loaded):
    model, pos, neg, vae = loaded["checkpoint"]
    unet, split_pos, split_neg, split_vae = loaded["split"]
    # the text: CLIP-L + CLIP-G from two files = the checkpoint's text encoders, bit for bit
    for a, b in ((pos, split_pos), (neg, split_neg)):
        assert torch.equal(a[0][0], b[0][0]) and torch.equal(a[0][1]["pooled_output"], b[0][1]["pooled_output"])
    # the model: SwD LoRA Loader + SwD Sampler
    ours = swd_latent(host, unet, split_pos, split_neg)
    ref = swd_latent(host, model, pos, neg)
    diff = (ours - ref).abs().max().item()
    print(f"\nSDXL split files vs checkpoint (SwD LoRA + SwD Sampler): max |d| {diff:.2e}")
    assert diff <= 1e-4 and torch.isfinite(ours).all()
    assert (ref - swd_latent(host, model, pos, neg, lora=None)).abs().max().item() > 1e-2  # the LoRA is in
    # the VAE
    image = host.node("VAEDecode")().decode(split_vae, {"samples": ours})[0]
    assert torch.equal(image, host.node("VAEDecode")().decode(vae, {"samples": ours})[0])
