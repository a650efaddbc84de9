"""swd_core.sampling against a fake flow model, and against diffusers' FlowMatchLCMScheduler."""
import pytest
import torch
from diffusers import FlowMatchLCMScheduler
from diffusers.utils.torch_utils import randn_tensor

import swd_core as core


def fake_velocity(x, t):
    """A deterministic stand-in for a flow model's velocity: depends on x, t and channel."""
    c = torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1, 1)
    return torch.tanh(0.7 * x + 0.01 * c) * (t.view(-1, 1, 1, 1) / 1000 + 0.5) + 0.1 * torch.sin(c)


def fake_denoiser(x, sigma):
    return x - sigma.view(-1, 1, 1, 1) * fake_velocity(x, sigma * 1000)


def run_core(schedule, batch, height, width, seed, method="bicubic", channels=4):
    sizes = core.latent_sizes(schedule.scales, height, width)
    noise = core.generator_noise(torch.Generator().manual_seed(seed))
    x = noise((batch, channels, *sizes[0]))  # sigma_0 = 1: pure noise
    sigmas = torch.tensor(schedule.sigmas, dtype=torch.float32)
    seen = []
    out = core.sample_scalewise(fake_denoiser, x, sigmas, sizes, noise,
                                resize=lambda t, s: core.interpolate(t, s, method),
                                callback=lambda d: seen.append(
                                    (d["i"], tuple(d["x"].shape), tuple(d["denoised"].shape))))
    return out, seen, sizes


def run_diffusers(schedule, batch, height, width, seed, method="bicubic", channels=4):
    sizes = core.latent_sizes(schedule.scales, height, width)
    factors = [s / schedule.scales[0] for s in schedule.scales[1:]]
    scheduler = FlowMatchLCMScheduler(shift=1.0, scale_factors=factors, upscale_mode=method)
    scheduler.set_timesteps(sigmas=list(schedule.sigmas[:-1]))
    generator = torch.Generator().manual_seed(seed)
    latents = randn_tensor((batch, channels, *sizes[0]), generator=generator, dtype=torch.float32)
    for t in scheduler.timesteps:
        v = fake_velocity(latents, t.expand(batch))
        latents = scheduler.step(v, t, latents, generator=generator).prev_sample
    return latents


@pytest.mark.parametrize("preset", sorted(core.PRESETS))
@pytest.mark.parametrize("height,width", [(32, 32), (48, 32)])
def test_matches_diffusers_flow_match_lcm_loop(preset, height, width):
    schedule = core.PRESETS[preset]
    ours, _, _ = run_core(schedule, 2, height, width, seed=7)
    ref = run_diffusers(schedule, 2, height, width, seed=7)
    assert ours.shape == ref.shape == (2, 4, height, width)
    assert (ours - ref).abs().max().item() < 1e-5


def test_shapes_follow_the_scales_and_callback_sees_every_step():
    schedule = core.PRESETS["SD3.5 Large, 6 steps"]
    out, seen, sizes = run_core(schedule, 1, 32, 24, seed=0)
    assert [s[0] for s in seen] == list(range(6))
    assert [s[1][-2:] for s in seen] == sizes
    assert [s[2][-2:] for s in seen] == sizes
    assert out.shape[-2:] == (32, 24)


def test_same_seed_same_result_other_seed_other_result():
    schedule = core.PRESETS["SD3.5 Medium, 4 steps"]
    a, _, _ = run_core(schedule, 2, 32, 32, seed=3)
    b, _, _ = run_core(schedule, 2, 32, 32, seed=3)
    c, _, _ = run_core(schedule, 2, 32, 32, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_renoise_is_the_flow_forward_process_and_last_step_returns_x0():
    sizes = [(2, 2), (4, 4)]
    sigmas = torch.tensor([1.0, 0.6, 0.0])
    draws = [torch.full((1, 1, 4, 4), 2.0)]
    evaluated = []

    def denoiser(x, sigma):
        evaluated.append(x.clone())
        return torch.ones_like(x) * (3.0 if x.shape[-1] == 2 else 5.0)

    out = core.sample_scalewise(denoiser, torch.zeros(1, 1, 2, 2), sigmas, sizes, lambda shape: draws.pop(0))
    # step 2 sees 0.6 * noise + 0.4 * upsampled x0 = 0.6 * 2 + 0.4 * 3
    assert torch.allclose(evaluated[1], torch.full((1, 1, 4, 4), 0.6 * 2 + 0.4 * 3))
    assert torch.equal(out, torch.full((1, 1, 4, 4), 5.0))  # sigma_N = 0: the last x0 itself


def test_nan_from_the_model_is_a_clear_error():
    with pytest.raises(core.SwDError, match="NaN or inf at step 1/2"):
        core.sample_scalewise(lambda x, s: x * float("nan"), torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 0.5, 0.0]),
                              [(2, 2), (4, 4)], lambda shape: torch.zeros(shape))


def test_mismatched_sizes_are_errors():
    with pytest.raises(core.SwDError, match="2 sigma steps but 1 scales"):
        core.sample_scalewise(lambda x, s: x, torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 0.5, 0.0]), [(2, 2)],
                              lambda shape: torch.zeros(shape))
    with pytest.raises(core.SwDError, match="start latent"):
        core.sample_scalewise(lambda x, s: x, torch.zeros(1, 1, 4, 4), torch.tensor([1.0, 0.0]), [(2, 2)],
                              lambda shape: torch.zeros(shape))


def test_swd_core_imports_without_comfyui(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    # only swd_core's parent dir, without ComfyUI, on the path; the pack root is not a package here
    parent = Path(core.__file__).resolve().parent.parent
    code = ("import sys; import swd_core as m; assert m.PRESETS; "
            "assert not any(n == 'comfy' or n.startswith('comfy.') for n in sys.modules), 'comfy imported'; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(parent)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
