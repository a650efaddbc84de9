"""swd_core.run, the diffusers entry point: seed-exact against diffusers' own StableDiffusion3Pipeline
(FlowMatchLCMScheduler) and against ComfyUI's SwDSampler, on the stand-in pipeline (harness.standins.sd3_pipeline)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import FlowMatchLCMScheduler, StableDiffusion3Pipeline
from PIL import Image

import swd_core as core
from harness.paths import COMFYUI, DEV, MODELS, ROOT
from harness.standins import sd3_pipeline as standin

SIX = "SD3.5 Large, 6 steps"
LORA = "swd-standin-lora/adapter_model.safetensors"
SIGMAS = [1.0000, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022]  # the first README's form: no trailing 0
SCALES = [32, 48, 64, 80, 96, 128]
PROMPTS = ["cat reading a newspaper", "a red bicycle in the rain"]


@pytest.fixture(scope="module")
def pipe():
    pipe = standin.build_standin_pipeline(MODELS, comfyui=COMFYUI)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_pipeline_latent(pipe, schedule, start, seed, **kw):
    """diffusers' own ``StableDiffusion3Pipeline.__call__`` with ``FlowMatchLCMScheduler(scale_factors=...)``.

    The stock pipeline calls ``scheduler.step()`` without the generator, so its re-noising
    draws from torch's global CPU RNG; with ``generator=None`` its start latents are drawn
    from there too. Seeding the global RNG with ``seed`` therefore gives one stream (start
    latents first, then one draw per step): the stream of ``torch.Generator().manual_seed(seed)``.
    """
    scheduler = FlowMatchLCMScheduler(shift=1.0, scale_factors=[s / schedule.scales[0] for s in schedule.scales[1:]],
                                      upscale_mode="bicubic")
    reference = StableDiffusion3Pipeline(**{**pipe.components, "scheduler": scheduler})
    reference.set_progress_bar_config(disable=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return reference(height=start[0] * 8, width=start[1] * 8, sigmas=list(schedule.sigmas[:-1]),
                         generator=None, **kw).images


@pytest.mark.parametrize("cfg,negative,target", [(1.0, None, (256, 256)), (3.5, "blurry, low quality", (384, 256))])
def test_same_latent_as_diffusers_pipeline(pipe, cfg, negative, target):
    schedule = core.PRESETS[SIX]
    ours = core.run(pipe, PROMPTS, preset=SIX, target_height=target[0], target_width=target[1], guidance_scale=cfg,
                    negative_prompt=negative, generator=torch.Generator().manual_seed(1234), output_type="latent")
    final = (target[0] // 8, target[1] // 8)
    assert ours.sizes == core.latent_sizes(schedule.scales, *final) and ours.sizes[0][0] >= 2
    ref = diffusers_pipeline_latent(pipe, schedule, ours.sizes[0], 1234, prompt=PROMPTS, guidance_scale=cfg,
                                    negative_prompt=negative, output_type="latent")
    assert ours.images.shape == ref.shape == (2, 16, *final)
    assert torch.equal(ours.images, ours.latents)
    assert (ours.images - ref).abs().max().item() <= 1e-4
    assert not torch.allclose(ours.images[0], ours.images[1])
    other = core.run(pipe, PROMPTS, preset=SIX, target_height=target[0], target_width=target[1], guidance_scale=cfg,
                     negative_prompt=negative, generator=torch.Generator().manual_seed(1235), output_type="latent")
    assert not torch.allclose(other.latents, ours.latents)


def test_readme_call_is_the_six_step_schedule_at_1024(pipe):
    """The upstream README's arguments: sigmas without the trailing 0, timesteps = sigmas[:-1] * 1000,
    height = width = scales[0] * 8 (the START size); the result is 1024 px, as published."""
    readme = core.run(pipe, PROMPTS[0], sigmas=torch.tensor(SIGMAS), timesteps=torch.tensor(SIGMAS[:-1]) * 1000,
                      scales=SCALES, guidance_scale=0.0, height=int(SCALES[0] * 8), width=int(SCALES[0] * 8),
                      generator=torch.Generator().manual_seed(0), output_type="latent")
    assert readme.sizes == [(s, s) for s in SCALES] and readme.sigmas == pytest.approx([*SIGMAS, 0.0], abs=1e-7)
    preset = core.run(pipe, PROMPTS[0], preset=SIX, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert torch.equal(readme.latents, preset.latents)
    full = core.run(pipe, PROMPTS[0], sigmas=[*SIGMAS, 0], timesteps=[1000 * s for s in SIGMAS], scales=SCALES,
                    target_height=1024, target_width=1024, generator=torch.Generator().manual_seed(0),
                    output_type="latent")
    assert torch.equal(full.latents, preset.latents)
    ref = diffusers_pipeline_latent(pipe, core.PRESETS[SIX], (32, 32), 0, prompt=PROMPTS[0], guidance_scale=0.0,
                                    output_type="latent")
    assert (readme.latents - ref).abs().max().item() <= 1e-4


def test_same_latent_as_comfyui_swd_sampler(host, pipe):
    """Both hosts, same seed and weights: ComfyUI's SwDSampler LATENT equals run's latent in ComfyUI's format."""
    latent_format = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors",
                                                         "default")[0].model.latent_format
    vae = pipe.vae.config
    assert (vae.scaling_factor, vae.shift_factor) == (latent_format.scale_factor, latent_format.shift_factor)
    base = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]
    model = host.node("SwDLoraLoader").execute(base, LORA, 1.0).args[0]
    schedule = host.node("SwDSchedule").execute(SIX, "", "").args[0]
    embeds, neg_embeds, pooled, neg_pooled = pipe.encode_prompt(
        prompt=PROMPTS[0], prompt_2=None, prompt_3=None, negative_prompt="blurry", do_classifier_free_guidance=True,
        device=torch.device("cpu"))
    positive = [[embeds, {"pooled_output": pooled}]]
    negative = [[neg_embeds, {"pooled_output": neg_pooled}]]
    for cfg, batch, seed in [(1.0, 1, 7), (3.0, 2, 8)]:
        comfy = host.node("SwDSampler").execute(model, positive, negative, {"samples": torch.zeros(batch, 16, 32, 32)},
                                                schedule, seed, cfg, "bicubic").args[0]["samples"]
        ours = core.run(pipe, PROMPTS[0], negative_prompt="blurry", preset=SIX, target_height=256, target_width=256,
                        guidance_scale=cfg, num_images_per_prompt=batch, generator=torch.Generator().manual_seed(seed),
                        output_type="latent")
        ours_comfy_format = ours.latents / vae.scaling_factor + vae.shift_factor  # process_latent_out
        assert comfy.shape == ours_comfy_format.shape == (batch, 16, 32, 32)
        assert (comfy - ours_comfy_format).abs().max().item() <= 1e-4


def test_decoded_outputs(pipe):
    """np equals diffusers' own decode of the same seed; pt and pil are the same pixels."""
    kw = dict(preset=SIX, target_height=128, target_width=128)
    as_np = core.run(pipe, PROMPTS[0], **kw, generator=torch.Generator().manual_seed(3), output_type="np")
    ref = diffusers_pipeline_latent(pipe, core.PRESETS[SIX], as_np.sizes[0], 3, prompt=PROMPTS[0], guidance_scale=1.0,
                                    output_type="np")
    assert as_np.images.shape == ref.shape == (1, 128, 128, 3)
    assert np.abs(as_np.images - ref).max() <= 1e-4
    as_pt = core.run(pipe, PROMPTS[0], **kw, generator=torch.Generator().manual_seed(3), output_type="pt")
    assert as_pt.images.shape == (1, 3, 128, 128)
    assert np.abs(as_pt.images.permute(0, 2, 3, 1).numpy() - as_np.images).max() <= 1e-6
    as_pil = core.run(pipe, PROMPTS[0], **kw, generator=torch.Generator().manual_seed(3), return_dict=False)[0]
    assert len(as_pil) == 1 and as_pil[0].size == (128, 128)
    assert np.array_equal(np.asarray(as_pil[0]), pipe.image_processor.numpy_to_pil(as_np.images)[0])


def test_clear_errors(pipe):
    SwDError = core.SwDError
    readme = dict(sigmas=SIGMAS, scales=SCALES)
    with pytest.raises(SwDError, match="timesteps .* do not match the sigmas"):
        core.run(pipe, "x", **readme, timesteps=[1000, 900, 800, 700, 600])
    with pytest.raises(SwDError, match="timesteps .* do not match the sigmas"):
        core.run(pipe, "x", sigmas=[*SIGMAS, 0.0], scales=SCALES, timesteps=torch.tensor(SIGMAS[:-1]) * 1000)
    with pytest.raises(SwDError, match="scales must increase"):
        core.run(pipe, "x", sigmas=SIGMAS, scales=[32, 48, 64, 64, 96, 128])
    with pytest.raises(SwDError, match="not a whole number of latent pixels"):
        core.run(pipe, "x", sigmas=SIGMAS, scales=[32, 48.5, 64, 80, 96, 128])
    with pytest.raises(SwDError, match="6 scales need 7 sigmas"):
        core.run(pipe, "x", sigmas=SIGMAS[:4], scales=SCALES)
    with pytest.raises(SwDError, match="either preset or scales"):
        core.run(pipe, "x", preset=SIX, **readme)
    with pytest.raises(SwDError, match="sigmas missing"):
        core.run(pipe, "x", scales=SCALES)
    with pytest.raises(SwDError, match="unknown preset"):
        core.run(pipe, "x", preset="SD9")
    with pytest.raises(SwDError, match="height 260 px is not a multiple of 16"):
        core.run(pipe, "x", **readme, height=260, width=256)
    with pytest.raises(SwDError, match="START size"):
        core.run(pipe, "x", **readme, height=256, width=256, target_height=512, target_width=512)
    with pytest.raises(SwDError, match="too small for this schedule"):
        core.run(pipe, "x", preset=SIX, target_height=16, target_width=16)
    with pytest.raises(SwDError, match="num_inference_steps 4"):
        core.run(pipe, "x", preset=SIX, num_inference_steps=4)
    with pytest.raises(SwDError, match="output_type 'jpeg'"):
        core.run(pipe, "x", preset=SIX, output_type="jpeg")
    with pytest.raises(SwDError, match="1 generators for 2 images"):
        core.run(pipe, PROMPTS, preset=SIX, target_height=128, target_width=128, generator=[torch.Generator()])
    with pytest.raises(SwDError, match="must be the start latent"):
        core.run(pipe, "x", preset=SIX, latents=torch.zeros(1, 16, 64, 64))
    with pytest.raises(SwDError, match="needs a diffusers StableDiffusion3Pipeline"):
        core.run(object(), "x", preset=SIX)


def test_diffusers_is_optional_and_imported_lazily(tmp_path):
    code = """
import sys
import swd_core as core
assert callable(core.run)
assert not [m for m in sys.modules if m.split(".")[0] in ("diffusers", "peft", "transformers")], "imported eagerly"
sys.modules["diffusers"] = None  # as if diffusers were not installed
try:
    core.run(object(), "x")
except ImportError as e:
    print(e)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the pack's folder, as a diffusers user would add it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "pip install diffusers" in out.stdout


def test_readme_example_script_runs_as_written(tmp_path):
    """dev/diffusers_example.py (quoted in docs/diffusers.md), run as that page says."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{DEV}", "COMFYUI_PATH": str(COMFYUI), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(DEV / "diffusers_example.py")], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with Image.open(tmp_path / "swd_readme_call.png") as a, Image.open(tmp_path / "swd_preset_256x384.png") as b:
        assert a.size == (256, 256) and b.size == (384, 256)
        assert np.asarray(a).std() > 1  # a picture, not a constant
