"""SwDSampler and SamplerSwD in the real ComfyUI host, seed-exact against diffusers' SwD pipeline."""
import pytest
import torch
from diffusers import SD3Transformer2DModel
from peft import PeftModel

from harness.paths import MODELS, SD3_LORA_DIR
from harness.reference import sd3 as reference_sd3
from harness.standins import sd3 as standins

LORA = "swd-standin-lora/adapter_model.safetensors"
SIX = "SD3.5 Large, 6 steps"


@pytest.fixture(scope="module")
def model(host):
    base = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]
    return host.node("SwDLoraLoader").execute(base, LORA, 1.0).args[0]


@pytest.fixture(scope="module")
def transformer():
    transformer = SD3Transformer2DModel.from_pretrained(MODELS / standins.TRANSFORMER_DIR)
    return PeftModel.from_pretrained(transformer, str(MODELS / "loras" / SD3_LORA_DIR)).eval()


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(11)
    return {k: torch.randn(shape, generator=g) for k, shape in
            [("pos", (1, 30, 4096)), ("pos_pooled", (1, 2048)), ("neg", (1, 30, 4096)), ("neg_pooled", (1, 2048))]}


def conds(prompts):
    return ([[prompts["pos"], {"pooled_output": prompts["pos_pooled"]}]],
            [[prompts["neg"], {"pooled_output": prompts["neg_pooled"]}]])


def schedule(host, preset=SIX):
    return host.node("SwDSchedule").execute(preset, "", "").args[0]


def swd_sampler(host, model, prompts, latent, seed, cfg, preset=SIX, method="bicubic", **kw):
    pos, neg = conds(prompts)
    return host.node("SwDSampler").execute(model, pos, neg, latent, schedule(host, preset), seed, cfg, method,
                                           **kw).args[0]["samples"]


def diffusers_latent(host, transformer, prompts, batch, height, width, seed, cfg, preset=SIX):
    """The reference (harness.reference.sd3): diffusers' SD3 transformer (+ PEFT LoRA) and
    FlowMatchLCMScheduler in the SwD loop, in ComfyUI's LATENT space."""
    sched = host.swd_core.PRESETS[preset]
    sizes = host.swd_core.latent_sizes(sched.scales, height, width)
    latents = reference_sd3.swd_latents(
        transformer, sched.sigmas, sizes, prompts["pos"], prompts["pos_pooled"], batch=batch, seed=seed, cfg=cfg,
        neg_embeds=prompts["neg"], neg_pooled=prompts["neg_pooled"],
        scale_factors=[s / sched.scales[0] for s in sched.scales[1:]])
    return reference_sd3.to_comfy_latent(latents)


@pytest.mark.parametrize("cfg", [1.0, 3.5])
@pytest.mark.parametrize("height,width", [(32, 32), (48, 32)])
def test_seed_exact_against_diffusers(host, model, transformer, prompts, cfg, height, width):
    latent = {"samples": torch.zeros(2, 16, height, width)}
    ours = swd_sampler(host, model, prompts, latent, seed=1234, cfg=cfg)
    ref = diffusers_latent(host, transformer, prompts, 2, height, width, seed=1234, cfg=cfg)
    assert ours.shape == ref.shape == (2, 16, height, width)
    assert (ours - ref).abs().max().item() <= 1e-4
    assert not torch.allclose(ours[0], ours[1])  # a batch of different images


def test_four_step_preset_and_other_seed(host, model, transformer, prompts):
    latent = {"samples": torch.zeros(1, 16, 32, 32)}
    preset = "SD3.5 Medium, 4 steps (first README)"
    ours = swd_sampler(host, model, prompts, latent, seed=5, cfg=1.0, preset=preset)
    assert (ours - diffusers_latent(host, transformer, prompts, 1, 32, 32, 5, 1.0, preset)).abs().max().item() <= 1e-4
    assert not torch.allclose(ours, swd_sampler(host, model, prompts, latent, seed=6, cfg=1.0, preset=preset))


def test_sampler_custom_advanced_path_equals_swd_sampler(host, model, prompts):
    """SamplerSwD in the stock SamplerCustomAdvanced: final size, deterministic, same picture per seed."""
    pos, neg = conds(prompts)
    sched, sigmas = host.node("SwDSchedule").execute(SIX, "", "").args
    sampler = host.node("SamplerSwD").execute(sched, "bicubic").args[0]
    guider = host.node("BasicGuider").execute(model, pos).args[0]
    noise = host.node("RandomNoise").execute(77).args[0]
    latent = {"samples": torch.zeros(1, 16, 48, 32)}
    runs = [host.node("SamplerCustomAdvanced").execute(noise, guider, sampler, sigmas, latent).args[0]["samples"]
            for _ in range(2)]
    assert runs[0].shape == (1, 16, 48, 32)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], swd_sampler(host, model, prompts, latent, seed=77, cfg=1.0))


def test_image_to_image_denoise(host, model, prompts):
    g = torch.Generator().manual_seed(3)
    image = {"samples": torch.randn(1, 16, 32, 32, generator=g)}
    a = swd_sampler(host, model, prompts, image, seed=1, cfg=1.0, denoise=0.8)
    b = swd_sampler(host, model, prompts, image, seed=1, cfg=1.0, denoise=0.8)
    txt2img = swd_sampler(host, model, prompts, image, seed=1, cfg=1.0, denoise=1.0)
    assert a.shape == (1, 16, 32, 32) and torch.equal(a, b)
    assert not torch.allclose(a, txt2img)
    # the stock path: second half of SplitSigmas gives the same result
    pos, neg = conds(prompts)
    sched, sigmas = host.node("SwDSchedule").execute(SIX, "", "").args
    low = host.node("SplitSigmas").execute(sigmas, 3).args[1]
    out = host.node("SamplerCustom").execute(model, True, 1, 1.0, pos, neg,
                                             host.node("SamplerSwD").execute(sched, "bicubic").args[0], low,
                                             image).args[0]["samples"]
    assert torch.equal(out, a)
    with pytest.raises(host.swd_core.SwDError, match="latent_image is empty"):
        swd_sampler(host, model, prompts, {"samples": torch.zeros(1, 16, 32, 32)}, seed=1, cfg=1.0, denoise=0.8)


def test_memory_is_requested_for_the_largest_scale(host, model, prompts, monkeypatch):
    """ComfyUI budgets the model for the final latent, not the first scale (8x8 here vs 32x32)."""
    import comfy.model_management
    import comfy.sampler_helpers

    requests = []
    real = comfy.model_management.load_models_gpu

    def recording(models, memory_required=0, *args, **kw):
        requests.append(memory_required)
        return real(models, memory_required, *args, **kw)

    monkeypatch.setattr(comfy.model_management, "load_models_gpu", recording)
    swd_sampler(host, model, prompts, {"samples": torch.zeros(1, 16, 32, 32)}, seed=0, cfg=1.0)
    final = comfy.sampler_helpers.estimate_memory(model, (1, 16, 32, 32), {})[0]
    first = comfy.sampler_helpers.estimate_memory(model, (1, 16, 8, 8), {})[0]
    assert final > 10 * first
    assert requests and max(requests) == pytest.approx(final, rel=1e-6)


def test_progress_previews_at_every_scale_and_model_patches_apply(host, model, prompts, monkeypatch):
    import comfy.utils
    import latent_preview
    from comfy.cli_args import LatentPreviewMethod

    monkeypatch.setattr(latent_preview.args, "preview_method", LatentPreviewMethod.Latent2RGB)
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total, preview)))
    seen_shapes = []

    def unet_wrapper(apply_model, args):  # a model patch, as other patch nodes add them
        seen_shapes.append(tuple(args["input"].shape[-2:]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = model.clone()
    patched.set_model_unet_function_wrapper(unet_wrapper)
    swd_sampler(host, patched, prompts, {"samples": torch.zeros(1, 16, 48, 32)}, seed=0, cfg=1.0)
    sizes = host.swd_core.latent_sizes(host.swd_core.PRESETS[SIX].scales, 48, 32)
    assert seen_shapes == sizes
    steps = [(v, t) for v, t, _ in updates]
    assert steps == [(i + 1, 6) for i in range(6)]
    preview_sizes = [p[1].size for _, _, p in updates]  # (format, PIL image (w, h), max size)
    assert preview_sizes == [(w, h) for h, w in sizes]


def test_interrupt_stops_between_steps(host, model, prompts):
    import comfy.model_management

    calls = []

    def unet_wrapper(apply_model, args):
        calls.append(1)
        if len(calls) == 2:
            comfy.model_management.interrupt_current_processing(True)  # as the UI's Cancel does
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = model.clone()
    patched.set_model_unet_function_wrapper(unet_wrapper)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        swd_sampler(host, patched, prompts, {"samples": torch.zeros(1, 16, 32, 32)}, seed=0, cfg=1.0)
    assert len(calls) == 2
    assert not comfy.model_management.processing_interrupted()  # the flag is consumed


def test_clear_errors(host, model, prompts):
    SwDError = host.swd_core.SwDError
    with pytest.raises(SwDError, match="too small for this schedule"):
        swd_sampler(host, model, prompts, {"samples": torch.zeros(1, 16, 2, 2)}, seed=0, cfg=1.0)
    with pytest.raises(SwDError, match="4 channels but the SD3.5 model expects 16"):
        swd_sampler(host, model, prompts, {"samples": torch.ones(1, 4, 32, 32)}, seed=0, cfg=1.0)

    def nan_wrapper(apply_model, args):
        return apply_model(args["input"], args["timestep"], **args["c"]) * float("nan")

    broken = model.clone()
    broken.set_model_unet_function_wrapper(nan_wrapper)
    with pytest.raises(SwDError, match="NaN or inf at step 1/6"):
        swd_sampler(host, broken, prompts, {"samples": torch.zeros(1, 16, 32, 32)}, seed=0, cfg=1.0)
    # masks, areas and noise_mask (inpainting) run per scale now: tests/host/test_masks.py
