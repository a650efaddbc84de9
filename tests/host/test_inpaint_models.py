"""Inpainting models (an SDXL inpainting UNet, FLUX.1 Fill) with the scale-wise sampler.

The models are the small SDXL and FLUX stand-ins built through ComfyUI's own classes with the
inpainting input channels: an SDXL UNet with 9 input channels (ComfyUI's ``set_inpaint``: mask
+ masked image), a FLUX transformer with ``img_in`` 384 wide (ComfyUI's ``FluxInpaint``: image +
packed mask). The conditioning comes from the stock InpaintModelConditioning (or the latent's
noise mask alone, VAEEncodeForInpaint), with the stand-in VAEs. ComfyUI makes the model's image
input (``c_concat``) once, for the final latent; SwD makes it at every step's size with the
model's own ``concat_cond``.
"""
import pytest
import torch

from harness.paths import FLUX_VAE, SD3_DIFFUSION_MODEL, SD3_VAE, SDXL_CHECKPOINT
from harness.reference import flux as flux_reference
from harness.reference import sdxl as sdxl_reference
from harness.standins import flux, sdxl

FAMILIES = {
    "SDXL inpaint": dict(preset="SDXL, 4 steps", context=32, pooled=sdxl.POOLED_FEATURES, extra={}),
    "FLUX Fill": dict(preset="FLUX.1-dev, 4 steps", context=64, pooled=32, extra={"guidance": 3.5}),
}
PIXELS = 256  # a 32x32 latent
#: the inpainted box in pixels, on the 8-pixel grid: latent rows 8..24, columns 6..25
BOX = (64, 48, 192, 200)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, host):
    """``(name, model, vae, prompts)``: an inpainting model, its family's stand-in VAE, three prompts."""
    import comfy.model_management
    import comfy.sd

    name = request.param
    spec = FAMILIES[name]
    if name == "SDXL inpaint":
        model = sdxl.comfy_model(sdxl.build_unet(seed=0, in_channels=9))
        assert model.model.concat_keys == ("mask", "masked_image")  # ComfyUI's inpainting UNet
        path = host.folder_paths.get_full_path("checkpoints", SDXL_CHECKPOINT)
        vae = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=False, output_model=False)[2]
    else:
        model = flux.comfy_model(flux.build_transformer(seed=0, in_channels=384, out_channels=64))
        assert type(model.model.model_config).__name__ == "FluxInpaint"
        vae = host.node("VAELoader")().load_vae(FLUX_VAE)[0]
    g = torch.Generator().manual_seed(7)
    prompts = [[[torch.randn(1, 9, spec["context"], generator=g),
                 {"pooled_output": torch.randn(1, spec["pooled"], generator=g), **spec["extra"]}]] for _ in range(3)]
    yield name, model, vae, prompts
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def pixels():
    return torch.rand(1, PIXELS, PIXELS, 3, generator=torch.Generator().manual_seed(2))


def box_mask(h=PIXELS, w=PIXELS, box=BOX):
    top, left, bottom, right = box
    m = torch.zeros(1, h, w)
    m[:, top:bottom, left:right] = 1.0
    return m


@pytest.fixture(scope="module")
def inpainted(host, family, pixels):
    """InpaintModelConditioning's positive, negative and latent (with its noise mask) for ``BOX``."""
    _, _, vae, prompts = family
    return host.node("InpaintModelConditioning")().encode(prompts[0], prompts[2], pixels, vae, box_mask(), True)


def schedule(host, family):
    return host.node("SwDSchedule").execute(FAMILIES[family[0]]["preset"], "", "").args


def swd(host, model, pos, neg, latent, sched, seed=3, cfg=1.0):
    return host.node("SwDSampler").execute(model, pos, neg, latent, sched, seed, cfg, "bicubic").args[0]["samples"]


def spy_model_calls(monkeypatch):
    """Every call of the model: ``(x's spatial size, c_concat)`` as ComfyUI hands them to ``_apply_model``."""
    import comfy.model_base

    seen, real = [], comfy.model_base.BaseModel._apply_model

    def spy(self, x, t, c_concat=None, *args, **kwargs):
        seen.append((tuple(x.shape[-2:]), None if c_concat is None else c_concat.clone()))
        return real(self, x, t, c_concat, *args, **kwargs)

    monkeypatch.setattr(comfy.model_base.BaseModel, "_apply_model", spy)
    return seen


def spy_blends(monkeypatch):
    """Every inpainting blend: ``(denoise_mask, latent_image)`` the wrapper blends with at that call."""
    import comfy.samplers

    seen, real = [], comfy.samplers.KSamplerX0Inpaint.__call__

    def spy(self, x, sigma, denoise_mask, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        seen.append((denoise_mask, self.latent_image))
        return real(self, x, sigma, denoise_mask, model_options, seed)

    monkeypatch.setattr(comfy.samplers.KSamplerX0Inpaint, "__call__", spy)
    return seen


# ------------------------------------------------------------------ one scale = ComfyUI's own path

@pytest.mark.parametrize("noise_mask", [True, False], ids=["noise-mask", "no-noise-mask"])
def test_one_scale_equals_the_stock_path(host, family, inpainted, noise_mask):
    """One scale at the final size, sigmas (start, 0): SwD = SamplerCustom + euler (one step to the x0),
    with InpaintModelConditioning's noise mask on the latent or without it (its ``noise_mask`` off)."""
    _, model, _, prompts = family
    pos, neg, latent = inpainted
    if not noise_mask:
        latent = {k: v for k, v in latent.items() if k != "noise_mask"}
    first = float(schedule(host, family)[1][0])  # the model's sigma at the schedule's start
    one = host.node("SwDSchedule").execute(host.swd_core.CUSTOM, "128", "1.0, 0").args[0]
    ours = swd(host, model, pos, neg, latent, one, cfg=2.0)
    euler = host.node("KSamplerSelect").execute("euler").args[0]
    stock = host.node("SamplerCustom").execute(model, True, 3, 2.0, pos, neg, euler, torch.tensor([first, 0.0]),
                                               latent).args[0]["samples"]
    # in the model's latent space (SDXL's raw latent is 1/0.13025 of it: float rounding grows with it)
    diff = model.model.process_latent_in(ours) - model.model.process_latent_in(stock)
    assert diff.abs().max().item() <= 1e-5
    # the model's image input did something: without InpaintModelConditioning's image the result differs
    plain = swd(host, model, prompts[0], prompts[2], latent, one, cfg=2.0)
    assert (ours - plain).abs().max().item() > 1e-2


# ------------------------------------------------------------------ several scales

def test_every_step_gets_the_image_input_at_its_size(host, family, inpainted, monkeypatch):
    """InpaintModelConditioning: at every step the model's c_concat has the step's size and is
    ``concat_cond``'s output for a latent of that size (its image and mask resized by ComfyUI)."""
    name, model, _, _ = family
    pos, neg, latent = inpainted
    sched = schedule(host, family)[0]
    seen = spy_model_calls(monkeypatch)
    out = swd(host, model, pos, neg, latent, sched)
    assert torch.isfinite(out).all()
    sizes = host.swd_core.latent_sizes(sched.scales, 32, 32, 2)
    assert [size for size, _ in seen] == sizes  # cfg 1: one call per step
    channels = model.model.latent_format.latent_channels
    cond = pos[0][1]
    for (_, c_concat), step in zip(seen, sizes):
        assert tuple(c_concat.shape) == (1, 5 if name == "SDXL inpaint" else 16 + 64, *step)
        expected = model.model.concat_cond(concat_latent_image=cond["concat_latent_image"],
                                           concat_mask=cond["concat_mask"], device=torch.device("cpu"),
                                           noise=torch.zeros(1, channels, *step))
        assert torch.equal(c_concat, expected)
    # the mask part is the inpainted box at every size (inside 1, far outside 0)
    for (_, c_concat), step in zip(seen, sizes):
        mask = c_concat[:, :1] if name == "SDXL inpaint" else c_concat[:, 16:].mean(1, keepdim=True)
        h, w = step
        assert mask[0, 0, h // 2, w // 2] == 1 and mask[0, 0, 0, 0] == 0 and mask[0, 0, -1, -1] == 0


def test_without_its_image_the_model_gets_the_step_s_mask_and_latent(host, family, pixels, monkeypatch):
    """VAEEncodeForInpaint alone (no InpaintModelConditioning): ComfyUI makes c_concat from the denoise
    mask and the input image; at every step they are the ones the inpainting blend uses at that step."""
    _, model, vae, prompts = family
    latent = host.node("VAEEncodeForInpaint")().encode(vae, pixels, box_mask(), 0)[0]
    sched = schedule(host, family)[0]
    seen, blends = spy_model_calls(monkeypatch), spy_blends(monkeypatch)
    out = swd(host, model, prompts[0], prompts[2], latent, sched)
    assert torch.isfinite(out).all()
    sizes = host.swd_core.latent_sizes(sched.scales, 32, 32, 2)
    assert [size for size, _ in seen] == sizes and len(blends) == len(sizes)
    for (size, c_concat), (denoise_mask, latent_image) in zip(seen, blends):
        assert tuple(denoise_mask.shape[-2:]) == size == tuple(latent_image.shape[-2:])
        expected = model.model.concat_cond(denoise_mask=denoise_mask, latent_image=latent_image,
                                           device=torch.device("cpu"), noise=torch.zeros_like(latent_image))
        assert torch.equal(c_concat, expected)


def test_outside_the_mask_is_kept(host, family, inpainted):
    """With InpaintModelConditioning's noise mask the output equals the input latent outside the mask,
    from SwD Sampler and from SamplerCustom + SwD Sampler (SAMPLER) alike."""
    import comfy.sampler_helpers

    _, model, _, _ = family
    pos, neg, latent = inpainted
    sched, sigmas = schedule(host, family)
    out = swd(host, model, pos, neg, latent, sched, cfg=2.0)
    mask = comfy.sampler_helpers.prepare_mask(latent["noise_mask"], out.shape, "cpu")
    change = (out - latent["samples"]).abs()
    assert change[mask == 0].max().item() <= 1e-5
    assert change[mask == 1].mean().item() > 1e-3
    sampler = host.node("SamplerSwD").execute(sched, "bicubic").args[0]
    custom = host.node("SamplerCustom").execute(model, True, 3, 2.0, pos, neg, sampler, sigmas,
                                                latent).args[0]["samples"]
    assert torch.equal(custom, out)


def test_an_area_crops_the_step_s_image_input(host, family, pixels, monkeypatch):
    """A regional prompt (ConditioningSetArea) on an inpainting model: each area's model call gets the
    step's c_concat cropped to the area at that step's size."""
    _, model, vae, prompts = family
    a, b, neg = prompts
    region = host.node("ConditioningSetArea")().append(b, 128, 96, 104, 64, 0.8)[0]
    both = host.node("ConditioningCombine")().combine(a, region)[0]
    pos, neg, latent = host.node("InpaintModelConditioning")().encode(both, neg, pixels, vae, box_mask(), True)
    seen = spy_model_calls(monkeypatch)
    out = swd(host, model, pos, neg, latent, schedule(host, family)[0])
    assert torch.isfinite(out).all()
    assert all(c_concat is not None and tuple(c_concat.shape[-2:]) == size for size, c_concat in seen)
    sizes = host.swd_core.latent_sizes(schedule(host, family)[0].scales, 32, 32, 2)
    cropped = [size for size, _ in seen if size not in sizes]
    assert len(cropped) == len(sizes)  # one area call per step, smaller than the step's latent


# ------------------------------------------------------------------ diffusers reference (SDXL)

def test_sdxl_inpaint_matches_the_diffusers_procedure_per_scale(host, pixels):
    """SDXL inpainting UNet: SwD Sampler = the diffusers SwD loop (``harness.reference.sdxl``) on the same
    weights in ``UNet2DConditionModel``, whose 9-channel input is StableDiffusionXLInpaintPipeline's
    ``cat([latents, mask, masked_image_latents])`` made at each step's size: the mask resized from the
    pixel mask as ``prepare_mask_latents`` does (nearest), the masked image's latent (InpaintModelConditioning's,
    in the UNet's space) resized bilinear. Empty latent, no noise mask (the pipeline blends only for a
    4-channel UNet). The box is on the grid of every scale, so nearest and ComfyUI's bilinear + round agree."""
    import torch.nn.functional as F

    import comfy.sd

    unet = sdxl.build_unet(seed=0, in_channels=9)
    model = sdxl.comfy_model(unet)
    path = host.folder_paths.get_full_path("checkpoints", SDXL_CHECKPOINT)
    vae = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=False, output_model=False)[2]
    g = torch.Generator().manual_seed(7)
    text = torch.randn(1, 9, 32, generator=g), torch.randn(1, sdxl.POOLED_FEATURES, generator=g)
    cond = [[text[0], {"pooled_output": text[1]}]]
    mask = box_mask(box=(64, 64, 192, 192))  # latent 4..12 of 16, 5..15 of 20, 6..18 of 24, 8..24 of 32
    pos, neg, _ = host.node("InpaintModelConditioning")().encode(cond, cond, pixels, vae, mask, False)
    sched = host.node("SwDSchedule").execute("SDXL, 4 steps", "", "").args[0]
    latent = {"samples": torch.zeros(1, 4, 32, 32)}
    ours = model.model.process_latent_in(swd(host, model, pos, neg, latent, sched, seed=11))

    image = pos[0][1]["concat_latent_image"] * sdxl_reference.SCALING_FACTOR

    def inpainting_unet(masked_image):
        def call(x, t, **kwargs):
            size = tuple(x.shape[-2:])
            m = F.interpolate(mask.unsqueeze(1), size=size)
            return unet(torch.cat([x, m, F.interpolate(masked_image, size=size, mode="bilinear")], 1), t, **kwargs)
        return call

    sizes = host.swd_core.latent_sizes(sched.scales, 32, 32, 2)
    ref = sdxl_reference.swd_latents(inpainting_unet(image), sched.sigmas, sizes, *text, batch=1, seed=11)
    assert (ours - ref).abs().max().item() <= 1e-4
    assert ref.abs().max().item() > 0.1
    other = sdxl_reference.swd_latents(inpainting_unet(torch.zeros_like(image)), sched.sigmas, sizes, *text,
                                       batch=1, seed=11)
    assert (other - ref).abs().max().item() > 1e-2  # the masked image reached the model


# ------------------------------------------------------------------ diffusers reference (FLUX Fill)

def test_flux_fill_matches_the_diffusers_procedure_per_scale(host, pixels):
    """FLUX.1 Fill: SwD Sampler on ComfyUI's ``FluxInpaint`` = the diffusers SwD loop (``harness.reference.flux``)
    on the same weights in ``FluxTransformer2DModel`` (``in_channels`` 384), whose input is FluxFillPipeline's
    ``cat((latents, masked_image_latents, mask))`` of packed tokens, made at each step's size by diffusers'
    ``prepare_mask_latents`` (``reference.flux.fill_input``) from InpaintModelConditioning's pixel mask and
    raw masked-image latent, both resized bilinear as ``Flux.concat_cond`` does. Empty latent, no noise mask
    (FluxFillPipeline does not blend), fp32, guidance 3.5; compared in the transformer's latent space."""
    transformer = flux.build_transformer(seed=0, in_channels=384, out_channels=64)
    model = flux.comfy_model(transformer)
    vae = host.node("VAELoader")().load_vae(FLUX_VAE)[0]
    g = torch.Generator().manual_seed(7)
    text = torch.randn(1, 9, 64, generator=g), torch.randn(1, 32, generator=g)
    cond = [[text[0], {"pooled_output": text[1], "guidance": 3.5}]]
    pos, neg, _ = host.node("InpaintModelConditioning")().encode(cond, cond, pixels, vae, box_mask(), False)
    sched = host.node("SwDSchedule").execute("FLUX.1-dev, 4 steps", "", "").args[0]
    latent = {"samples": torch.zeros(1, 16, 32, 32)}
    ours = model.model.process_latent_in(swd(host, model, pos, neg, latent, sched, seed=11))

    fmt = model.model.latent_format
    image, mask = pos[0][1]["concat_latent_image"], pos[0][1]["concat_mask"]
    sizes = host.swd_core.latent_sizes(sched.scales, 32, 32, 2)

    def reference(masked_image, pixel_mask=mask):
        fill = flux_reference.fill_input(pixel_mask, masked_image, fmt.scale_factor, fmt.shift_factor)
        return flux_reference.swd_latents(transformer, sched.sigmas, sizes, *text, batch=1, seed=11,
                                          guidance=3.5, image_input=fill)

    ref = reference(image)
    print(f"FLUX Fill vs diffusers: max |d| {(ours - ref).abs().max().item():.2e}, "
          f"max |ref| {ref.abs().max().item():.1f}")
    assert (ours - ref).abs().max().item() <= 1e-4
    assert ref.abs().max().item() > 0.1
    other = reference(torch.zeros_like(image))
    assert (other - ref).abs().max().item() > 1e-2  # the masked image reached the model
    other = reference(image, torch.ones_like(mask))
    assert (other - ref).abs().max().item() > 1e-2  # and so did the mask


# ------------------------------------------------------------------ what stays refused

def test_an_image_input_the_model_does_not_make_is_refused(host, family, pixels):
    """A c_concat that the model's concat_cond does not reproduce (an SDXL conditioning's
    ``noise_concat``), or another model input of the noise's shape, is refused by both nodes."""
    import comfy.conds

    name, model, _, prompts = family
    a, _, neg = prompts
    latent = {"samples": torch.zeros(1, model.model.latent_format.latent_channels, 32, 32)}
    sched, sigmas = schedule(host, family)
    if name == "SDXL inpaint":
        key = "c_concat"
        cond = [[a[0][0], {**a[0][1], "noise_concat": torch.randn(1, 5, 32, 32)}]]
        euler = host.node("KSamplerSelect").execute("euler").args[0]
        stock = host.node("SamplerCustom").execute(model, True, 0, 1.0, cond, neg, euler, sigmas[:2],
                                                   latent).args[0]["samples"]
        assert torch.isfinite(stock).all()  # ComfyUI itself runs it, at the final size
    else:
        key = "image_cond"
        cond = [[a[0][0], {**a[0][1], "model_conds": {key: comfy.conds.CONDNoiseShape(torch.zeros(1, 16, 32, 32))}}]]
    message = (rf"the positive conditioning carries '{key}', an image the model takes at the final latent size "
               rf"that is not the model's own inpainting input \(made by \w+\.concat_cond from "
               rf"InpaintModelConditioning's image and mask or the latent's noise mask\); SwD changes the latent's "
               rf"size every step and can remake only that one: remove the node that sets '{key}'")
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler: " + message):
        swd(host, model, cond, neg, latent, sched)
    sampler = host.node("SamplerSwD").execute(sched, "bicubic").args[0]
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler \(SAMPLER\): " + message):
        host.node("SamplerCustom").execute(model, True, 0, 1.0, cond, neg, sampler, sigmas, latent)


def test_an_area_with_another_negative_image_is_refused(host, family, inpainted):
    """An area prompt whose negative carries another image: ComfyUI pairs the area's copy in the
    negative with the negative's c_concat (``create_cond_with_same_area_if_none``), which
    ``concat_cond`` of the copy's own inputs does not reproduce, so SwD refuses it (ComfyUI runs it)."""
    _, model, _, _ = family
    pos, neg, latent = inpainted
    pos = host.node("ConditioningSetArea")().append(pos, 128, 96, 104, 64, 0.8)[0]
    other = neg[0][1]["concat_latent_image"] + 0.5
    neg = [[neg[0][0], {**neg[0][1], "concat_latent_image": other}]]
    sched, sigmas = schedule(host, family)
    euler = host.node("KSamplerSelect").execute("euler").args[0]
    stock = host.node("SamplerCustom").execute(model, True, 0, 1.0, pos, neg, euler, sigmas[:2],
                                               latent).args[0]["samples"]
    assert torch.isfinite(stock).all()
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler: the negative conditioning carries 'c_concat', "
                                                      r"an image the model takes at the final latent size that is "
                                                      r"not the model's own inpainting input"):
        swd(host, model, pos, neg, latent, sched)


def test_inpaint_conditioning_on_a_model_without_the_input_runs(host, pixels):
    """InpaintModelConditioning on SD3.5, which has no inpainting input: ComfyUI makes no c_concat, so
    nothing is refused and the picture is that of the same latent without the conditioning's image."""
    model = host.node("UNETLoader")().load_unet(SD3_DIFFUSION_MODEL, "default")[0]
    vae = host.node("VAELoader")().load_vae(SD3_VAE)[0]
    g = torch.Generator().manual_seed(1)
    a = [[torch.randn(1, 9, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    pos, neg, latent = host.node("InpaintModelConditioning")().encode(a, a, pixels, vae, box_mask(), True)
    assert "concat_latent_image" in pos[0][1]
    sched = host.node("SwDSchedule").execute("SD3.5 Large, 4 steps", "", "").args[0]
    assert torch.equal(swd(host, model, pos, neg, latent, sched), swd(host, model, a, a, latent, sched))
