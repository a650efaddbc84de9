"""Masked and area conditioning and inpainting with the scale-wise sampler, through ComfyUI's own nodes.

At one scale (the final size) SwD must give what ComfyUI's stock path gives: SamplerCustom with
euler on sigmas [1, 0] is one step to the model's x0, and its noise (RandomNoise's CPU draw of
the seed) is the first draw SwD makes from the same seed. At several scales, what reaches the
model at every step is the mask / area / inpainting input at that step's size.
"""
import pytest
import torch

from harness.paths import SD3_DIFFUSION_MODEL, SD3_VAE
from harness.standins import flux, sdxl

SIX = "SD3.5 Large, 6 steps"


@pytest.fixture(scope="module")
def model(host):
    return host.node("UNETLoader")().load_unet(SD3_DIFFUSION_MODEL, "default")[0]


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(11)

    def cond():
        return [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    return cond(), cond(), cond()  # two positives, one negative


def one_scale(host):
    return host.node("SwDSchedule").execute(host.swd_core.CUSTOM, "128", "1.0, 0").args


def six(host):
    return host.node("SwDSchedule").execute(SIX, "", "").args


def swd(host, model, pos, neg, latent, seed=3, cfg=1.0, sched=None):
    sched = six(host)[0] if sched is None else sched
    return host.node("SwDSampler").execute(model, pos, neg, latent, sched, seed, cfg, "bicubic").args[0]["samples"]


def stock_euler(host, model, pos, neg, latent, sigmas, seed=3, cfg=1.0):
    euler = host.node("KSamplerSelect").execute("euler").args[0]
    return host.node("SamplerCustom").execute(model, True, seed, cfg, pos, neg, euler, sigmas,
                                              latent).args[0]["samples"]


def combine(host, a, b):
    return host.node("ConditioningCombine")().combine(a, b)[0]


def set_mask(host, cond, mask, strength=1.0, bounds=False):
    return host.node("ConditioningSetMask")().append(cond, mask, "mask bounds" if bounds else "default", strength)[0]


def set_area(host, cond, width, height, x, y, strength=1.0):
    return host.node("ConditioningSetArea")().append(cond, width, height, x, y, strength)[0]


def set_area_percentage(host, cond, width, height, x, y, strength=1.0):
    return host.node("ConditioningSetAreaPercentage")().append(cond, width, height, x, y, strength)[0]


def box_mask(h, w, top, left, bottom, right, batch=1):
    m = torch.zeros(batch, h, w)
    m[:, top:bottom, left:right] = 1.0
    return m


def regional_positives(host, prompts, kind):
    """A full-frame prompt plus a second one restricted to a region (a 256x256 px image: 32x32 latent)."""
    a, b, _ = prompts
    if kind == "mask":  # a soft-edged mask at pixel resolution, as LoadImage gives
        m = box_mask(256, 256, 40, 100, 200, 230)
        m[:, 40:200, 100:110] = 0.5
        region = set_mask(host, b, m, strength=0.8)
    elif kind == "mask bounds":
        region = set_mask(host, b, box_mask(256, 256, 40, 100, 200, 230), bounds=True)
    elif kind == "area":
        region = set_area(host, b, 128, 96, 104, 64, strength=0.7)
    else:
        region = set_area_percentage(host, b, 0.5, 0.25, 0.25, 0.5)
    return combine(host, a, region)


KINDS = ["mask", "mask bounds", "area", "area percentage"]


@pytest.mark.parametrize("cfg", [1.0, 2.5])
@pytest.mark.parametrize("kind", KINDS)
def test_one_scale_equals_the_stock_path(host, model, prompts, kind, cfg):
    pos, neg = regional_positives(host, prompts, kind), prompts[2]
    sched, sigmas = one_scale(host)
    latent = {"samples": torch.zeros(1, 16, 32, 32)}
    ours = swd(host, model, pos, neg, latent, cfg=cfg, sched=sched)
    stock = stock_euler(host, model, pos, neg, latent, sigmas, cfg=cfg)
    plain = swd(host, model, prompts[0], neg, latent, cfg=cfg, sched=sched)
    assert (ours - stock).abs().max().item() <= 1e-5
    assert (ours - plain).abs().max().item() > 1e-2  # the region did something


def spy_get_area_and_mult(monkeypatch):
    import comfy.samplers

    seen, real = [], comfy.samplers.get_area_and_mult

    def spy(conds, x_in, timestep_in):
        mask = conds.get("mask")
        seen.append((tuple(x_in.shape[-2:]), None if mask is None else tuple(mask.shape[-2:]), conds.get("area")))
        return real(conds, x_in, timestep_in)

    monkeypatch.setattr(comfy.samplers, "get_area_and_mult", spy)
    return seen


@pytest.mark.parametrize("kind", KINDS)
def test_every_step_gets_the_region_at_its_size(host, model, prompts, monkeypatch, kind):
    core = host.swd_core
    pos = regional_positives(host, prompts, kind)
    sizes = core.latent_sizes(core.PRESETS[SIX].scales, 48, 32)
    import comfy.samplers

    final = []  # the region ComfyUI resolved for the final size
    real_resolve = comfy.samplers.resolve_areas_and_cond_masks_multidim

    def resolve(conditions, dims, device):
        real_resolve(conditions, dims, device)
        final.extend(c.get("area") for c in conditions if "mask" in c or "area" in c)

    monkeypatch.setattr(comfy.samplers, "resolve_areas_and_cond_masks_multidim", resolve)
    seen = spy_get_area_and_mult(monkeypatch)
    swd(host, model, pos, prompts[2], {"samples": torch.zeros(1, 16, 48, 32)})
    assert [s[0] for s in seen[::2]] == sizes  # two conds per step
    regional = [s for s in seen if s[1] is not None or s[2] is not None]
    assert len(regional) == len(sizes)
    for (size, mask, area), step in zip(regional, sizes):
        assert size == step
        if kind.startswith("mask"):
            assert mask == step
        if final[0] is not None:
            assert area == core.scale_area(final[0], step, (48, 32))
    assert regional[-1][2] == final[0]  # at the final size: ComfyUI's own


def test_scaled_areas_and_masks(host):
    core, regional = host.swd_core, host.pack.nodes.regional
    assert core.scale_area((12, 16, 4, 16), (16, 16), (32, 32)) == (6, 8, 2, 8)
    # areas that touch at the final size touch at every scale
    left, right = (32, 13, 0, 0), (32, 19, 0, 13)
    for s in (4, 6, 10, 16, 22, 32):
        a, b = (core.scale_area(r, (s, s), (32, 32)) for r in (left, right))
        assert a[1] + a[3] == b[3] and b[1] + b[3] == s
    assert core.scale_area((40, 40, 0, 0), (4, 4), (32, 32)) == (4, 4, 0, 0)  # clipped as ComfyUI crops
    mask = box_mask(32, 32, 8, 8, 24, 24)
    import comfy.utils

    assert torch.equal(regional.resize_cond_mask(mask, (16, 16)),
                       comfy.utils.common_upscale(mask.unsqueeze(1), 16, 16, "bilinear", "none").squeeze(1))
    assert regional.resize_cond_mask(mask, (32, 32)) is mask


def test_full_mask_and_full_area_equal_no_region(host, model, prompts):
    a, _, neg = prompts
    latent = {"samples": torch.zeros(1, 16, 48, 32)}
    plain = swd(host, model, a, neg, latent, cfg=2.0)
    full = [set_mask(host, a, torch.ones(1, 384, 256)), set_area(host, a, 256, 384, 0, 0),
            set_area_percentage(host, a, 1.0, 1.0, 0.0, 0.0)]
    for cond in full:
        assert torch.equal(swd(host, model, cond, neg, latent, cfg=2.0), plain)
    assert not torch.allclose(swd(host, model, set_area(host, a, 128, 384, 0, 0), neg, latent, cfg=2.0), plain)


# ------------------------------------------------------------------ inpainting

@pytest.fixture(scope="module")
def image_latent():
    return torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(5))


def noise_mask_latent(host, samples, mask):
    return host.node("SetLatentNoiseMask")().set_mask({"samples": samples}, mask)[0]


def test_inpainting_one_scale_equals_the_stock_path(host, model, prompts, image_latent):
    latent = noise_mask_latent(host, image_latent, box_mask(32, 32, 4, 8, 20, 30))
    sched, sigmas = one_scale(host)
    ours = swd(host, model, prompts[0], prompts[2], latent, sched=sched)
    assert (ours - stock_euler(host, model, prompts[0], prompts[2], latent, sigmas)).abs().max().item() <= 1e-5


def test_set_latent_noise_mask_keeps_the_outside(host, model, prompts, image_latent):
    mask = box_mask(256, 256, 32, 64, 160, 224)  # pixel resolution, as LoadImage's MASK
    latent = noise_mask_latent(host, image_latent, mask)
    out = swd(host, model, prompts[0], prompts[2], latent)
    keep = box_mask(32, 32, 4, 8, 20, 28) == 0  # the latent pixels the resized mask leaves at 0
    keep = keep.unsqueeze(1).expand_as(out)
    assert (out - image_latent)[keep].abs().max().item() <= 1e-5
    assert (out - image_latent)[~keep].abs().min().item() > 0
    assert (out - image_latent)[~keep].abs().mean().item() > 0.1
    # SamplerSwD in SamplerCustom: the same picture for the same seed
    sched, sigmas = six(host)
    sampler = host.node("SamplerSwD").execute(sched, "bicubic").args[0]
    custom = host.node("SamplerCustom").execute(model, True, 3, 1.0, prompts[0], prompts[2], sampler, sigmas,
                                                latent).args[0]["samples"]
    assert torch.equal(custom, out)


def test_every_step_blends_at_its_size_with_the_step_noise(host, model, prompts, image_latent, monkeypatch):
    import comfy.samplers

    core, sampler = host.swd_core, host.pack.nodes.sampler
    draws, seen = [], []
    real_noise = sampler.swd_core.generator_noise

    def recorded_noise(*args):
        draw = real_noise(*args)

        def recorded(shape):
            draws.append(draw(shape))
            return draws[-1]
        return recorded

    real_call = comfy.samplers.KSamplerX0Inpaint.__call__

    def spy(self, x, sigma, denoise_mask, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        seen.append((tuple(x.shape[-2:]), tuple(denoise_mask.shape), tuple(self.latent_image.shape), self.noise,
                     x.clone(), self.latent_image, sigma))
        return real_call(self, x, sigma, denoise_mask, model_options, seed)

    monkeypatch.setattr(sampler.swd_core, "generator_noise", recorded_noise)
    monkeypatch.setattr(comfy.samplers.KSamplerX0Inpaint, "__call__", spy)
    latent = noise_mask_latent(host, image_latent[:, :, :24], box_mask(24, 32, 4, 4, 20, 16))
    swd(host, model, prompts[0], prompts[2], latent)
    sizes = core.latent_sizes(core.PRESETS[SIX].scales, 24, 32)
    assert [s[0] for s in seen] == sizes
    for (_, mask, latent_shape, noise, *_), step, draw in zip(seen, sizes, draws):
        assert mask == (1, 16, *step) and latent_shape == (1, 16, *step)
        assert noise is draw  # the noise the sampler drew for this step
    # the first step's x is the image noised with that draw, everywhere
    _, _, _, noise, x, start, sigma = seen[0]
    assert torch.allclose(x, sigma[0] * noise + (1 - sigma[0]) * start, atol=1e-6)
    assert [tuple(d.shape[-2:]) for d in draws] == sizes


@pytest.fixture(scope="module")
def vae(host):
    return host.node("VAELoader")().load_vae(SD3_VAE)[0]


def test_vae_encode_for_inpaint_keeps_the_outside(host, model, prompts, vae):
    import comfy.sampler_helpers

    g = torch.Generator().manual_seed(2)
    pixels = torch.rand(1, 256, 256, 3, generator=g)
    latent = host.node("VAEEncodeForInpaint")().encode(vae, pixels, box_mask(256, 256, 64, 48, 176, 200), 6)[0]
    assert "noise_mask" in latent
    out = swd(host, model, prompts[0], prompts[2], latent)
    mask = comfy.sampler_helpers.prepare_mask(latent["noise_mask"], out.shape, "cpu")
    change = (out - latent["samples"]).abs()
    assert change[mask == 0].max().item() <= 1e-5
    assert change[mask == 1].mean().item() > 0.1
    # one scale: ComfyUI's own path
    sched, sigmas = one_scale(host)
    ours = swd(host, model, prompts[0], prompts[2], latent, sched=sched)
    assert (ours - stock_euler(host, model, prompts[0], prompts[2], latent, sigmas)).abs().max().item() <= 1e-5


# ------------------------------------------------------------------ what still cannot work

def test_a_mask_batch_that_does_not_divide_the_latent_batch_is_refused(host, model, prompts):
    a, b, neg = prompts
    pos = combine(host, a, set_mask(host, b, box_mask(32, 32, 0, 0, 16, 16, batch=2)))
    latent = {"samples": torch.zeros(3, 16, 32, 32)}
    with pytest.raises(RuntimeError):  # ComfyUI's own path fails with a bare tensor-size error
        stock_euler(host, model, pos, neg, latent, one_scale(host)[1])
    with pytest.raises(host.swd_core.SwDError,
                       match=r"^SwD Sampler: the positive conditioning has a batch of 2 masks \(ConditioningSetMask\) "
                             r"but the latent has a batch of 3"):
        swd(host, model, pos, neg, latent)
    sched, sigmas = six(host)
    sampler = host.node("SamplerSwD").execute(sched, "bicubic").args[0]
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler \(SAMPLER\): the positive conditioning"):
        host.node("SamplerCustom").execute(model, True, 0, 1.0, pos, neg, sampler, sigmas, latent)
    # a batch of masks the latent's batch is a multiple of works, as in ComfyUI
    out = swd(host, model, pos, neg, {"samples": torch.zeros(4, 16, 32, 32)})
    assert out.shape == (4, 16, 32, 32) and torch.isfinite(out).all()


def test_a_full_size_image_input_to_the_model_is_refused(host, model, prompts):
    """SD3.5 makes no c_concat (no inpainting input): one set by hand cannot be remade per scale.
    Inpainting models: tests/host/test_inpaint_models.py."""
    import comfy.conds

    a, _, neg = prompts
    image = comfy.conds.CONDNoiseShape(torch.zeros(1, 5, 32, 32))
    concat = [[a[0][0], {**a[0][1], "model_conds": {"c_concat": image}}]]
    with pytest.raises(host.swd_core.SwDError,
                       match=r"^SwD Sampler: the positive conditioning carries 'c_concat', an image the model takes "
                             r"at the final latent size that is not the model's own inpainting input \(made by "
                             r"SD3\.concat_cond"):
        swd(host, model, concat, neg, {"samples": torch.zeros(1, 16, 32, 32)})


# ------------------------------------------------------------------ the other families

@pytest.mark.parametrize("kind,channels,preset", [("SDXL", 4, "SDXL, 4 steps"), ("FLUX", 16, "FLUX.1-dev, 4 steps")])
def test_regions_and_inpainting_on_sdxl_and_flux(host, monkeypatch, kind, channels, preset):
    """A UNet (SDXL) and FLUX run cropped areas of odd sizes at the small scales, and keep the outside."""
    g = torch.Generator().manual_seed(2)
    if kind == "SDXL":  # the small diffusers-shaped stand-ins, as ComfyUI models
        model, context, pooled, extra = sdxl.comfy_model(sdxl.build_unet(seed=0)), 32, sdxl.POOLED_FEATURES, {}
    else:
        model, context, pooled, extra = flux.comfy_model(flux.build_transformer(seed=0)), 64, 32, {"guidance": 3.5}
    pos, other, neg = ([[torch.randn(1, 9, context, generator=g),
                         {"pooled_output": torch.randn(1, pooled, generator=g), **extra}]] for _ in range(3))
    pos = combine(host, combine(host, pos, set_area(host, other, 96, 136, 8, 40, 0.8)),
                  set_mask(host, other, box_mask(256, 256, 16, 100, 250, 200), bounds=True))
    image = torch.randn(1, channels, 32, 32, generator=torch.Generator().manual_seed(1))
    latent = noise_mask_latent(host, image, box_mask(32, 32, 4, 4, 20, 28))
    sched = host.node("SwDSchedule").execute(preset, "", "").args[0]
    seen = spy_get_area_and_mult(monkeypatch)
    out = host.node("SwDSampler").execute(model, pos, neg, latent, sched, 3, 2.0, "bicubic").args[0]["samples"]
    assert torch.isfinite(out).all()
    keep = (box_mask(32, 32, 4, 4, 20, 28) == 0).unsqueeze(1).expand_as(out)
    assert (out - image)[keep].abs().max().item() <= 1e-5 and (out - image)[~keep].abs().mean().item() > 1e-3
    areas = [(size, area) for size, _, area in seen if area is not None]
    assert {size for size, _ in areas} == set(host.swd_core.latent_sizes(sched.scales, 32, 32, 2))
    assert any(a[0] % 2 for _, a in areas)  # an odd-sized crop reached the model
