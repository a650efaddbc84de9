"""Stand-in model files (harness.standins): formats, determinism, ComfyUI loading.

The stand-ins are generated (or reused, when the manifest matches) in SWD_STANDINS_DIR,
default `<repo>/.host/models` (the folder scripts/dev.py uses).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

import harness.standins as ms_driver
from harness import paths as harness_paths
from harness.standins import sd3 as ms

REPO = harness_paths.ROOT


@pytest.fixture(scope="session")
def models_dir() -> Path:
    out = Path(os.environ.get("SWD_STANDINS_DIR", harness_paths.MODELS))
    ms_driver.write_standins(out, seed=0)
    return out.resolve()


@pytest.fixture(scope="session")
def paths(models_dir):
    return ms_driver.write_standins(models_dir, seed=0)


@pytest.fixture(scope="session")
def comfy():
    """ComfyUI's comfy package, from COMFYUI_PATH, on the CPU (like `main.py --cpu`)."""
    ms.import_comfy()
    if "comfy.model_management" not in sys.modules:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
    import comfy.lora
    import comfy.model_base
    import comfy.model_detection
    import comfy.sd
    import comfy.utils

    return comfy


@pytest.fixture(scope="session")
def inputs():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(1, 16, 16, 16, generator=g)
    ctx = torch.randn(1, 77, 4096, generator=g)
    pooled = torch.randn(1, 2048, generator=g)
    return x, ctx, pooled


def _comfy_x0(model_patcher, x, ctx, pooled, sigma=0.7):
    with torch.no_grad():
        return model_patcher.model.apply_model(x, torch.tensor([sigma]), c_crossattn=ctx, y=pooled).float()


@pytest.fixture(scope="session")
def comfy_unet(comfy, paths):
    return comfy.sd.load_diffusion_model(str(paths["diffusion_model"]))


def _load_sd(path):
    from safetensors.torch import load_file

    return load_file(str(path))


# --------------------------------------------------------------------------- files, cache, determinism

def test_all_files_and_manifest(paths, models_dir):
    for key, p in paths.items():
        assert p.exists(), key
    man = json.loads((models_dir / ms_driver.MANIFEST_NAME).read_text())
    assert man["seed"] == 0 and man["version"] == ms_driver.STANDINS_VERSION
    assert man["files"]["checkpoint"] == "checkpoints/swd-standin-sd35.safetensors"
    assert man["files"]["diffusion_model"] == "diffusion_models/swd-standin-sd35-transformer.safetensors"
    assert man["files"]["vae"] == "vae/swd-standin-sd35-vae.safetensors"
    assert man["files"]["clip_l"] == "text_encoders/swd-standin-clip_l.safetensors"
    assert man["files"]["lora_dir"] == "loras/swd-standin-lora"
    assert (paths["transformer_dir"] / "config.json").exists()
    assert (paths["vae_dir"] / "diffusion_pytorch_model.safetensors").exists()


def test_cached_second_run_is_a_no_op(paths, models_dir):
    before = {k: p.stat().st_mtime_ns for k, p in paths.items() if p.is_file()}
    assert ms_driver.main(["--out", str(models_dir), "--seed", "0", "-q"]) == 0
    after = {k: p.stat().st_mtime_ns for k, p in paths.items() if p.is_file()}
    assert before == after
    assert not ms_driver._cached(models_dir, seed=1)


def test_transformer_bytes_deterministic(paths, tmp_path):
    a = ms.build_transformer(0)
    a.save_pretrained(str(tmp_path / "t"), safe_serialization=True)
    fresh = (tmp_path / "t" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert fresh == paths["transformer_weights"].read_bytes()
    assert json.loads((tmp_path / "t" / "config.json").read_text())["qk_norm"] == "rms_norm"
    # the single diffusers-keyed file holds the same tensors
    single, folder = _load_sd(paths["diffusion_model"]), _load_sd(paths["transformer_weights"])
    assert single.keys() == folder.keys()
    assert all(torch.equal(single[k], folder[k]) for k in single)
    # another seed gives other weights
    b = ms.build_transformer(1)
    assert not torch.equal(a.proj_out.weight, b.proj_out.weight)


def test_lora_file_deterministic_and_clean(paths, tmp_path):
    out = ms.save_peft_lora(ms.build_transformer(0), tmp_path / "lora", seed=0)
    assert (out / "adapter_model.safetensors").read_bytes() == paths["lora_weights"].read_bytes()
    assert (out / "adapter_config.json").read_text() == paths["lora_config"].read_text()
    conf = json.loads(paths["lora_config"].read_text())
    assert conf["r"] == 4 and conf["lora_alpha"] == 8 and conf["peft_type"] == "LORA"
    assert conf["base_model_name_or_path"] is None
    assert sorted(conf["target_modules"]) == sorted(ms.LORA_CONFIG["target_modules"])
    text = paths["lora_config"].read_text()
    assert str(REPO) not in text and "/tmp" not in text
    sd = _load_sd(paths["lora_weights"])
    assert "base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight" in sd
    assert "base_model.model.transformer_blocks.0.ff_context.net.2.lora_B.weight" in sd
    assert sd["base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight"].shape == (4, 128)
    assert all(v.abs().sum() > 0 for v in sd.values())  # init_lora_weights=False: B is not zero


def test_lora_variants(tmp_path):
    out = ms.save_peft_lora(
        ms.build_transformer(0), tmp_path / "v", seed=5,
        use_rslora=True, rank_pattern={"to_q": 8}, alpha_pattern={"net.2": 2},
    )
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["use_rslora"] is True
    assert conf["rank_pattern"] == {"to_q": 8} and conf["alpha_pattern"] == {"net.2": 2}
    sd = _load_sd(out / "adapter_model.safetensors")
    assert sd["base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight"].shape[0] == 8
    assert sd["base_model.model.transformer_blocks.0.attn.to_k.lora_A.weight"].shape[0] == 4


def test_lora_changes_diffusers_output(paths, inputs):
    from diffusers import SD3Transformer2DModel
    from peft import PeftModel

    x, ctx, pooled = inputs
    t = torch.tensor([700.0])
    base = SD3Transformer2DModel.from_pretrained(str(paths["transformer_dir"])).eval()
    with torch.no_grad():
        v0 = base(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t).sample
        lora = PeftModel.from_pretrained(base, str(paths["lora_dir"])).eval()
        v1 = lora(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t).sample
    assert (v1 - v0).abs().max() > 1e-3


# --------------------------------------------------------------------------- ComfyUI loading

def test_diffusion_model_loads_as_sd3_and_matches_diffusers(comfy, comfy_unet, paths, inputs):
    from diffusers import SD3Transformer2DModel

    assert isinstance(comfy_unet.model, comfy.model_base.SD3)
    assert comfy_unet.model.diffusion_model.pos_embed_max_size == 192
    x, ctx, pooled = inputs
    x0 = _comfy_x0(comfy_unet, x, ctx, pooled, 0.7)
    tr = SD3Transformer2DModel.from_pretrained(str(paths["transformer_dir"])).eval()
    with torch.no_grad():
        v = tr(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
               timestep=torch.tensor([700.0])).sample
    assert v.abs().max() > 0.1  # a non-trivial prediction
    torch.testing.assert_close(x0, x - 0.7 * v, atol=1e-5, rtol=0)


def test_checkpoint_loads_and_matches_unet_file(comfy, comfy_unet, paths, inputs, caplog):
    # the checkpoint's MMDiT is ComfyUI's own diffusers->MMDiT conversion of the diffusers file
    t_sd = _load_sd(paths["diffusion_model"])
    theirs = comfy.model_detection.convert_diffusers_mmdit(dict(t_sd), "model.diffusion_model.")
    in_file = {k: v for k, v in _load_sd(paths["checkpoint"]).items() if k.startswith("model.diffusion_model.")}
    assert in_file.keys() == theirs.keys()
    assert all(torch.equal(in_file[k], theirs[k]) for k in in_file)

    with caplog.at_level(logging.DEBUG):
        out = comfy.sd.load_checkpoint_guess_config(str(paths["checkpoint"]), output_vae=True, output_clip=False)
    model, clip, vae = out[:3]
    assert clip is None
    assert isinstance(model.model, comfy.model_base.SD3)
    assert vae is not None and vae.latent_channels == 16
    bad = [r.getMessage() for r in caplog.records
           if any(s in r.getMessage()
                  for s in ("unet missing", "unet unexpected", "Missing VAE keys", "Leftover VAE keys"))]
    assert not bad, bad

    ckpt = _load_sd(paths["checkpoint"])
    mmdit_keys = {k[len("model.diffusion_model."):] for k in ckpt if k.startswith("model.diffusion_model.")}
    assert mmdit_keys == set(model.model.diffusion_model.state_dict().keys())
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.")) for k in ckpt)

    x, ctx, pooled = inputs
    torch.testing.assert_close(_comfy_x0(model, x, ctx, pooled), _comfy_x0(comfy_unet, x, ctx, pooled),
                               atol=1e-6, rtol=0)


def test_vae_files_load_in_comfy(comfy, paths, caplog):
    with caplog.at_level(logging.DEBUG):
        single = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(paths["vae"])))
        single.throw_exception_if_invalid()
        from_diffusers = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(paths["vae_weights"])))
    bad = [r.getMessage() for r in caplog.records if "VAE keys" in r.getMessage()]
    assert not bad, bad
    assert single.latent_channels == 16 and from_diffusers.latent_channels == 16
    a, b = single.first_stage_model.state_dict(), from_diffusers.first_stage_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)
    ckpt_vae = {k[len("first_stage_model."):]: v for k, v in _load_sd(paths["checkpoint"]).items()
                if k.startswith("first_stage_model.")}
    assert all(torch.equal(ckpt_vae[k].float(), a[k].float()) for k in a)
    img = single.decode(torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(0)))
    assert tuple(img.shape) == (1, 32, 32, 3) and torch.isfinite(img).all()


def test_diffusers_vae_config(paths):
    from diffusers import AutoencoderKL

    cfg = AutoencoderKL.load_config(str(paths["vae_dir"]))
    assert cfg["latent_channels"] == 16 and cfg["scaling_factor"] == 1.5305 and cfg["shift_factor"] == 0.0609
    assert cfg["use_quant_conv"] is False and cfg["use_post_quant_conv"] is False


def test_clip_l_loads_as_sd3_clip(comfy, paths, caplog):
    with caplog.at_level(logging.DEBUG):
        clip = comfy.sd.load_clip(ckpt_paths=[str(paths["clip_l"])], embedding_directory=None,
                                  clip_type=comfy.sd.CLIPType.SD3)
    bad = [r.getMessage() for r in caplog.records
           if "clip missing" in r.getMessage() or "clip unexpected" in r.getMessage()]
    assert not bad, bad
    cond = clip.encode_from_tokens_scheduled(clip.tokenize("a cat"))
    c, extra = cond[0]
    assert tuple(c.shape) == (1, 77, 4096)
    assert tuple(extra["pooled_output"].shape) == (1, 2048)
    assert c[..., :768].abs().sum() > 0 and c[..., 768:].abs().sum() == 0  # CLIP-G and T5 absent: zero-padded


def test_lora_maps_fully_in_comfy(comfy, comfy_unet, paths, caplog):
    lora = comfy.utils.load_torch_file(str(paths["lora_weights"]), safe_load=True)
    with caplog.at_level(logging.DEBUG):
        patched, _ = comfy.sd.load_lora_for_models(comfy_unet, None, lora, 1.0, 0.0)
    bad = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
    assert not bad, bad
    # 14 LoRA modules; q/k/v of a block share one fused qkv weight -> 14 - 2*2 = 10 patched weights
    assert len(patched.patches) == 10


def test_sdxl_checkpoint_is_detected_as_sdxl_and_its_parts_work(comfy, models_dir, caplog):
    """The SDXL stand-in: ComfyUI's own detection (not an explicit config) calls it SDXL, with CLIP-L + CLIP-G
    giving SDXL's 2048-wide context and 1280 pooled vector, a 4-channel VAE, and every LoRA key mapped."""
    import comfy.lora
    import comfy.sd
    import comfy.utils

    from harness.standins import sdxl

    path = models_dir / sdxl.CHECKPOINT_FILE
    with caplog.at_level(logging.WARNING):
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path))
    assert type(model.model).__name__ == "SDXL" and model.model.model_type.name == "EPS"
    assert not [r for r in caplog.records if "missing" in r.getMessage().lower()]
    cond = clip.encode_from_tokens_scheduled(clip.tokenize("a red fox"))
    assert cond[0][0].shape == (1, 77, 2048) and cond[0][1]["pooled_output"].shape == (1, 1280)
    assert torch.isfinite(cond[0][0]).all()
    assert vae.latent_channels == 4
    lora = comfy.utils.load_torch_file(str(models_dir / sdxl.LORA_DIR / "adapter_model.safetensors"), safe_load=True)
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    assert not any(k.startswith("base_model.model.") for k in key_map)  # ComfyUI has no PEFT spelling for SDXL
    names = {k.rsplit(".lora_", 1)[0].removeprefix("base_model.model.") for k in lora}
    assert any(n.endswith(".to_out.0") for n in names) and len(names) == len(lora) // 2


def test_flux_standins_are_written_in_the_published_layout_not_by_the_hosts_converter(comfy):
    """The FLUX stand-ins' BFL names come from our own table (``flux_keys``), as published files have them
    (RMSNorm weights named ``.scale``, as in ``flux1-dev.safetensors`` and XLabs' ControlNets); the host's
    converter gives the same tensors under the same names up to that suffix (0.3.75 writes ``.scale``,
    0.33.0 ``.weight``), so the table is what ComfyUI itself does, whatever it names the norms."""
    import comfy.model_detection

    from harness.standins import flux, flux_keys

    sd = flux.build_transformer().state_dict()
    ours = flux_keys.bfl_state_dict(sd)
    assert "double_blocks.0.img_attn.norm.key_norm.scale" in ours and "single_blocks.1.norm.query_norm.scale" in ours
    assert not any(k.endswith("_norm.weight") for k in ours)
    host = comfy.model_detection.convert_diffusers_mmdit({k: v.clone() for k, v in sd.items()}, "")

    def plain(d):
        return {k.replace("_norm.weight", "_norm.scale"): v for k, v in d.items()}

    assert plain(host).keys() == ours.keys()
    assert all(torch.equal(plain(host)[k], v) for k, v in ours.items())
