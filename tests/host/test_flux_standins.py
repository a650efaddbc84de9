"""The FLUX.1-dev file stand-ins load through ComfyUI's stock loaders as FLUX, deterministically.

One module-scoped set of files (about 1.5 GB on disk, ~4 GB peak RSS while the transformer
loads in fp32); the checks share it.
"""
import hashlib
import importlib
import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _harness(name: str):
    # TODO(lead): plain "from harness.standins import flux" once dev/ is on the path
    path = ROOT / "dev" / "harness" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"h13s_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flux = _harness("standins/flux")


@pytest.fixture(scope="module")
def models_dir(host, tmp_path_factory):
    out = tmp_path_factory.mktemp("flux_models")
    flux.write_files(out, seed=0)
    flux.write_lora(out, seed=0)
    for kind in ("diffusion_models", "vae", "text_encoders", "loras"):
        host.folder_paths.add_model_folder_path(kind, str(out / kind))
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unet_loader_detects_flux_dev_and_the_peft_lora_maps(host, models_dir):
    import comfy.lora
    import comfy.model_base
    import comfy.model_management
    import comfy.supported_models
    import comfy.utils

    model = host.node("UNETLoader")().load_unet("flux1-dev.safetensors", "default")[0]
    try:
        assert type(model.model) is comfy.model_base.Flux
        assert type(model.model.model_config) is comfy.supported_models.Flux  # guidance-distilled dev, not schnell
        config = model.model.model_config.unet_config
        detected = [config[k] for k in ("hidden_size", "num_heads", "depth", "depth_single_blocks",
                                         "guidance_embed", "context_in_dim", "vec_in_dim")]
        assert detected == [3072, 24, 1, 1, True, 4096, 768]

        # The full-width PEFT folder: every module maps once the base_model.model. aliases are added.
        lora_keys = importlib.import_module(host.pack.__name__ + ".nodes.lora_keys")
        sd = comfy.utils.load_torch_file(str(models_dir / flux.LORA_DIR / "adapter_model.safetensors"), safe_load=True)
        modules = {k[: -len(".lora_A.weight")] for k in sd if k.endswith(".lora_A.weight")}
        stock = comfy.lora.model_lora_keys_unet(model.model, {})
        assert len(modules) == 14 + 6 + 3 and not modules & set(stock)
        key_map = lora_keys.peft_key_map(model.model, stock)
        assert modules <= set(key_map)
        patched = model.clone()
        assert len(patched.add_patches(comfy.lora.load_lora(sd, key_map), 1.0)) == len(modules)
    finally:
        del model
        comfy.model_management.unload_all_models()


def test_vae_and_text_encoder_loaders_accept_the_files(host, models_dir):
    vae = host.node("VAELoader")().load_vae("ae.safetensors")[0]
    assert vae.latent_channels == 16
    image = vae.decode(torch.zeros(1, 16, 4, 4))
    assert image.shape == (1, 32, 32, 3) and torch.isfinite(image).all()
    clip = host.node("DualCLIPLoader")().load_clip("clip_l.safetensors", "t5xxl_fp16.safetensors", "flux")[0]
    assert type(clip.cond_stage_model).__name__.startswith("FluxClipModel")  # no encode: see t5xxl_state_dict


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
    va, vb = (flux.save_safetensors(flux.vae_state_dict(seed=3), tmp_path / n) for n in ("va", "vb"))
    assert sha256(va) == sha256(vb)


def test_tiny_flux_pipeline_feeds_the_reference(host):
    """``build_pipeline``: FluxPipeline's own encode_prompt gives what the reference and the small model take."""
    reference = _harness("reference/flux")
    pipe = flux.build_pipeline(seed=0)
    assert pipe.vae_scale_factor == 8 and pipe.vae.config.latent_channels == 16
    embeds, pooled, text_ids = pipe.encode_prompt("a cat reading a newspaper", prompt_2=None, max_sequence_length=512)
    assert embeds.shape == (1, 512, 64) and pooled.shape == (1, 32) and text_ids.shape == (512, 3)
    sizes = [(16, 16), (20, 20), (24, 24), (32, 32)]
    latents = reference.swd_latents(pipe.transformer, (1.0, 0.8956, 0.7363, 0.6007, 0.0), sizes, embeds, pooled,
                                    text_ids, batch=1, seed=0)
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor).sample
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()
