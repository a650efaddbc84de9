"""The FLUX.1-dev file stand-ins (written by setup into .host/models) load through ComfyUI's stock
loaders as FLUX.1-dev, take the SwD-FLUX PEFT LoRA, and are deterministic."""
import hashlib
from pathlib import Path

import torch

from harness import paths
from harness.reference import flux as reference
from harness.standins import flux
from harness.standins.common import save_safetensors


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unet_loader_detects_flux_dev_and_the_swd_lora_loads(host):
    import comfy.model_base
    import comfy.model_management
    import comfy.supported_models

    model = host.node("UNETLoader")().load_unet(paths.FLUX_DIFFUSION_MODEL, "default")[0]
    try:
        assert type(model.model) is comfy.model_base.Flux
        assert type(model.model.model_config) is comfy.supported_models.Flux  # guidance-distilled dev, not schnell
        config = model.model.model_config.unet_config
        detected = [config[k] for k in ("hidden_size", "num_heads", "depth", "depth_single_blocks",
                                         "guidance_embed", "context_in_dim", "vec_in_dim")]
        assert detected == [3072, 24, 1, 1, True, 768, 768]
        out = host.node("SwDLoraLoader").execute(model, paths.FLUX_LORA, 1.0)
        assert "patched 23 weights" in out.ui.as_dict()["text"][0]
    finally:
        del model
        comfy.model_management.unload_all_models()


def test_vae_and_the_clip_l_text_encoder_fit_the_transformer(host):
    vae = host.node("VAELoader")().load_vae(paths.FLUX_VAE)[0]
    assert vae.latent_channels == 16
    image = vae.decode(torch.zeros(1, 16, 4, 4))
    assert image.shape == (1, 32, 32, 3) and torch.isfinite(image).all()
    clip = host.node("CLIPLoader")().load_clip(paths.CLIP_L, "stable_diffusion")[0]
    (cond, extra), = host.node("CLIPTextEncode")().encode(clip, "a fox")[0]
    assert cond.shape[-1] == 768 and extra["pooled_output"].shape == (1, 768)  # the stand-in's context and vec


def test_same_seed_same_bytes(tmp_path):
    a = flux.write_lora(tmp_path / "a", seed=3)
    b = flux.write_lora(tmp_path / "b", seed=3)
    c = flux.write_lora(tmp_path / "c", seed=4)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert sha256(a / name) == sha256(b / name)
    assert sha256(a / "adapter_model.safetensors") != sha256(c / "adapter_model.safetensors")
    small_a = flux.save_peft_lora(flux.build_transformer(seed=3), tmp_path / "sa", seed=3)
    small_b = flux.save_peft_lora(flux.build_transformer(seed=3), tmp_path / "sb", seed=3)
    assert sha256(small_a / "adapter_model.safetensors") == sha256(small_b / "adapter_model.safetensors")
    va, vb = (save_safetensors(flux.vae_state_dict(seed=3), tmp_path / n) for n in ("va", "vb"))
    assert sha256(va) == sha256(vb)


def test_tiny_flux_pipeline_feeds_the_reference(host):
    """``build_pipeline``: FluxPipeline's own encode_prompt gives what the reference and the small model take."""
    pipe = flux.build_pipeline(seed=0)
    assert pipe.vae_scale_factor == 8 and pipe.vae.config.latent_channels == 16
    embeds, pooled, text_ids = pipe.encode_prompt("a cat reading a newspaper", prompt_2=None, max_sequence_length=512)
    assert embeds.shape == (1, 512, 64) and pooled.shape == (1, 32) and text_ids.shape == (512, 3)
    sizes = [(16, 16), (20, 20), (24, 24), (32, 32)]
    latents = reference.swd_latents(pipe.transformer, (1.0, 0.8956, 0.7363, 0.6007, 0.0), sizes, embeds, pooled,
                                    text_ids, batch=1, seed=0)
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor).sample
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()
