"""FLUX.1 ControlNets with SwD Sampler / SamplerSwD, in the real ComfyUI host, on the stand-ins.

Stand-ins (``harness.standins.flux_controlnet``): diffusers ``FluxControlNetModel`` weights in the two
layouts ComfyUI's stock ``ControlNetLoader`` takes for FLUX: InstantX's (diffusers keys, VAE-encoded
hint, ``load_controlnet_flux_instantx``) and XLabs' (BFL keys + a pixel conv stem,
``load_controlnet_flux_xlabs_mistoline``). Both become ``comfy.ldm.flux.controlnet.ControlNetFlux``.

* the hint follows the latent: ``ControlNet.get_control`` rebuilds it whenever the latent's size
  changes: InstantX, one resize + VAE encode of the hint image at ``latent size * 8`` pixels per scale;
  XLabs, one resize to ``latent size * 8`` pixels per scale, no VAE;
* the result equals a diffusers reference (``harness.reference.flux``: ``FluxTransformer2DModel`` +
  ``FluxControlNetModel`` as ``FluxControlNetPipeline`` calls them, the hint resized (and for InstantX
  VAE-encoded) per scale as ComfyUI does it) within 1e-4 (fp32), for both layouts: diffusers cannot load
  XLabs' files, but the same network is its ``FluxControlNetModel`` with a pixel stem, and the XLabs
  stand-in is that model's weights under XLabs' names;
* SamplerSwD in SamplerCustomAdvanced gives SwD Sampler's latent with the ControlNet too;
* a FLUX ControlNet on SD3.5 or SDXL, and an SDXL ControlNet on FLUX, are refused naming the node
  before the first step (the SD3 ControlNet on FLUX: ``test_controlnet.py``).

The parity model is the small FLUX with FLUX.1-dev's block counts (19 double, 38 single): ComfyUI's
``ControlNetFlux`` spreads its outputs over 19 and 38 blocks whatever the model has, diffusers over the
model's own; they agree on FLUX.1-dev's counts only.
"""
from __future__ import annotations

import pytest
import safetensors.torch
import torch

from harness import paths
from harness.controlnet_spy import ControlNetSpy
from harness.reference import flux as reference
from harness.standins import flux, flux_controlnet

PRESET = "FLUX.1-dev, 4 steps"
GUIDANCE = 4.5
TOLERANCE = 1e-4
FILES = {"instantx": paths.FLUX_CONTROLNET_INSTANTX, "xlabs": paths.FLUX_CONTROLNET_XLABS}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(2)
    return torch.randn(1, 9, 64, generator=g), torch.randn(1, 32, generator=g)


@pytest.fixture(scope="module")
def small(host):
    """The small FLUX (FLUX.1-dev's block counts) in diffusers and in ComfyUI, same weights."""
    import comfy.model_management

    transformer = flux.build_transformer(seed=0, **flux_controlnet.PARITY_TRANSFORMER_OVERRIDES)
    yield transformer, flux.comfy_model(transformer)
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def controlnets(host):
    """``{layout: (diffusers FluxControlNetModel, ComfyUI ControlNet)}``, the same small weights."""
    out = {}
    for layout in ("instantx", "xlabs"):
        model = flux_controlnet.build_controlnet(seed=0, layout=layout)
        sd = (flux_controlnet.instantx_state_dict if layout == "instantx" else flux_controlnet.xlabs_state_dict)(model)
        out[layout] = model, flux_controlnet.comfy_controlnet(sd)
    return out


@pytest.fixture(scope="module")
def vaes(host):
    """The FLUX VAE stand-in file, in ComfyUI (``VAELoader``) and in diffusers (the same file converted
    by diffusers' own LDM -> diffusers VAE conversion)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    comfy_vae = host.node("VAELoader")().load_vae(paths.FLUX_VAE)[0]
    ldm = {k: v.float() for k, v in safetensors.torch.load_file(paths.MODELS / "vae" / paths.FLUX_VAE).items()}
    vae = AutoencoderKL(**flux.VAE_CONFIG).eval()
    vae.load_state_dict(convert_ldm_vae_checkpoint(ldm, vae.config), strict=True)
    return comfy_vae, vae


def sizes_of(host, height, width, preset=PRESET):
    return host.swd_core.latent_sizes(host.swd_core.PRESETS[preset].scales, height, width)


def conditioning(host, text, guidance=GUIDANCE):
    ctx, pooled = text
    return host.node("FluxGuidance").execute([[ctx, {"pooled_output": pooled}]], guidance).args[0]


def apply_controlnet(host, controlnet, vae, image, cond, strength):
    return host.node("ControlNetApplyAdvanced")().apply_controlnet(cond, cond, controlnet, image, strength, 0.0, 1.0,
                                                                   vae=vae)


def swd_sampler(host, model, pos, neg, latent, seed, preset=PRESET):
    schedule = host.node("SwDSchedule").execute(preset, "", "").args[0]
    return host.node("SwDSampler").execute(model, pos, neg, {"samples": latent}, schedule, seed, 1.0,
                                           "bicubic").args[0]["samples"]


# --------------------------------------------------------------------------- the stand-ins

@pytest.mark.parametrize("layout", ["instantx", "xlabs"])
def test_file_standins_load_through_the_stock_loader(host, caplog, layout):
    """``ControlNetLoader`` takes each file for its layout's FLUX ControlNet, every key used; the
    builder gives the file's tensors again."""
    import comfy.latent_formats
    import comfy.ldm.flux.controlnet

    with caplog.at_level("DEBUG"):
        cn = host.node("ControlNetLoader")().load_controlnet(FILES[layout])[0]
    model = cn.control_model
    assert type(model) is comfy.ldm.flux.controlnet.ControlNetFlux
    assert (model.hidden_size, model.params.depth, model.params.depth_single_blocks) == (3072, 1, 0)
    if layout == "instantx":
        assert model.latent_input and isinstance(cn.latent_format, comfy.latent_formats.Flux)
        assert cn.compression_ratio == 1  # x the VAE's 8: the hint image is encoded at the latent's size x 8
    else:
        assert not model.latent_input and cn.latent_format is None and cn.compression_ratio == 8
    assert not [r for r in caplog.records if "controlnet keys" in r.getMessage()]
    on_disk = safetensors.torch.load_file(paths.MODELS / "controlnet" / FILES[layout])
    again = flux_controlnet.file_state_dict(layout, seed=0)
    assert again.keys() == on_disk.keys() and all(torch.equal(again[k], on_disk[k]) for k in again)
    assert ("controlnet_x_embedder.weight" in on_disk) == (layout == "instantx")
    assert ("input_hint_block.14.weight" in on_disk) == (layout == "xlabs")


# --------------------------------------------------------------------------- (a) executor: a hint per scale

def controlnet_prompt(layout: str, *, width=128, height=96, seed=3, prefix="swd_flux_cn", strength=0.8,
                      model=("UNETLoader", {"unet_name": paths.FLUX_DIFFUSION_MODEL, "weight_dtype": "default"}),
                      preset=PRESET, controlnet=None):
    """FLUX file stand-ins (CLIP-L as the text encoder) + ControlNetLoader + LoadImage(example.png) +
    Apply ControlNet (with the FLUX VAE) + FluxGuidance + SwD Sampler + SaveLatent (API format)."""
    return {
        "model": {"class_type": model[0], "inputs": model[1]},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": paths.FLUX_VAE}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": paths.CLIP_L, "type": "stable_diffusion"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house by a lake", "clip": ["clip", 0]}},
        "guidance": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["pos", 0], "guidance": GUIDANCE}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": controlnet or FILES[layout]}},
        "image": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "apply": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["guidance", 0], "negative": ["guidance", 0], "control_net": ["cn", 0], "vae": ["vae", 0],
            "image": ["image", 0], "strength": strength, "start_percent": 0.0, "end_percent": 1.0}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": preset, "scales": "", "sigmas": ""}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height,
                                                                   "batch_size": 1}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["model", 0], "positive": ["apply", 0], "negative": ["apply", 1],
            "latent_image": ["latent", 0], "schedule": ["sched", 0], "seed": seed, "cfg": 1.0,
            "upscale_method": "bicubic"}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": prefix}},
    }


def saved_latent(host, executor):
    out = executor.history_result["outputs"]["save"]["latents"][0]
    return safetensors.torch.load_file(
        f"{host.folder_paths.get_output_directory()}/{out['subfolder']}/{out['filename']}")["latent_tensor"]


@pytest.mark.parametrize("layout", ["instantx", "xlabs"])
def test_hint_is_rebuilt_at_every_scale(host, monkeypatch, layout):
    """ComfyUI's executor, stock nodes, the file stand-ins: the ControlNet runs once per step with its
    hint built for that step's size: InstantX, a VAE encode of the hint image at the scale's latent size
    x 8 pixels (one per scale) and the hint latent at the latent's size; XLabs, the hint image at the
    latent's size x 8 pixels and no VAE encode. Strength 0 gives another latent than strength 0.8."""
    import comfy.ldm.flux.controlnet

    spy = ControlNetSpy(monkeypatch, comfy.ldm.flux.controlnet.ControlNetFlux)
    executor, messages = host.run_prompt(controlnet_prompt(layout, prefix=f"swd_flux_cn_{layout}"), f"fcn-{layout}")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    sizes = sizes_of(host, 96 // 8, 128 // 8)
    assert len(set(sizes)) == 4 and sizes[-1] == (12, 16)
    assert [c[0] for c in spy.calls] == sizes  # cfg 1: one ControlNet call per step
    if layout == "instantx":
        assert [c[1] for c in spy.calls] == [(1, 16, h, w) for h, w in sizes]
        assert spy.encodes == [(h * 8, w * 8) for h, w in sizes]
    else:
        assert [c[1] for c in spy.calls] == [(1, 3, h * 8, w * 8) for h, w in sizes]
        assert spy.encodes == []
    with_cn = saved_latent(host, executor)
    executor, messages = host.run_prompt(controlnet_prompt(layout, strength=0.0, prefix=f"swd_flux_cn0_{layout}"),
                                         f"fcn0-{layout}")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    assert (saved_latent(host, executor) - with_cn).abs().max().item() > 1e-3


# --------------------------------------------------------------------------- (b) against diffusers

def reference_latent(host, transformer, controlnet, vae, text, image, layout, batch, height, width, seed,
                     strength):
    sched = host.swd_core.PRESETS[PRESET]
    sizes = sizes_of(host, height, width)
    pixels = image.movedim(-1, 1)
    cache = {}

    def hint_for_size(size):
        if size not in cache:
            cache[size] = (reference.instantx_hint(vae, pixels, size) if layout == "instantx"
                           else reference.xlabs_hint(pixels, size))
        return cache[size]

    hook = reference.controlnet_hook(controlnet, hint_for_size, conditioning_scale=strength)
    latents = reference.swd_latents(transformer, sched.sigmas, sizes, *text, batch=batch, seed=seed,
                                    guidance=GUIDANCE, controlnet=hook)
    return latents, cache


@pytest.mark.parametrize(("layout", "batch", "height", "width", "strength"), [
    ("instantx", 1, 32, 32, 1.0),
    ("instantx", 1, 32, 48, 0.7),
    ("instantx", 2, 32, 32, 0.7),
    ("xlabs", 1, 32, 48, 0.7),
    ("xlabs", 2, 32, 32, 1.0),
], ids=["instantx-square", "instantx-non-square", "instantx-batch2", "xlabs-non-square", "xlabs-batch2"])
def test_same_latent_as_diffusers_with_controlnet(host, monkeypatch, small, controlnets, vaes, text, hint_image,
                                                  layout, batch, height, width, strength):
    transformer, patcher = small
    ref_cn, comfy_cn = controlnets[layout]
    comfy_vae, vae = vaes
    import comfy.ldm.flux.controlnet

    spy = ControlNetSpy(monkeypatch, comfy.ldm.flux.controlnet.ControlNetFlux)
    pos, neg = apply_controlnet(host, comfy_cn, comfy_vae, hint_image, conditioning(host, text), strength)
    latent = swd_sampler(host, patcher, pos, neg, torch.zeros(batch, 16, height, width), seed=21)
    ours = patcher.model.process_latent_in(latent.float())
    ref, ref_hints = reference_latent(host, transformer, ref_cn, vae, text, hint_image, layout, batch, height, width,
                                      21, strength)
    # the hints first (a mismatch here would explain one below): ComfyUI keeps InstantX's in the
    # ControlNet's latent space, XLabs' as [0, 1] pixels (ControlNetFlux maps them to [-1, 1] itself)
    assert set(spy.hints) == set(ref_hints) == set(sizes_of(host, height, width))
    for size, hint in spy.hints.items():
        ours_hint = hint[:1] if layout == "instantx" else hint[:1] * 2 - 1
        assert (ours_hint - ref_hints[size]).abs().max().item() <= TOLERANCE, size
    assert spy.encodes == ([(h * 8, w * 8) for h, w in sizes_of(host, height, width)] if layout == "instantx" else [])
    assert ours.shape == ref.shape == (batch, 16, height, width)
    diff = (ours - ref).abs().max().item()
    print(f"{layout} batch {batch} {height}x{width} strength {strength}: max |ours - diffusers| = {diff:.2e}")
    assert diff <= TOLERANCE
    # the ControlNet has an effect (the stand-in is not zero-initialised)
    plain = reference.swd_latents(transformer, host.swd_core.PRESETS[PRESET].sigmas, sizes_of(host, height, width),
                                  *text, batch=batch, seed=21, guidance=GUIDANCE)
    assert (plain - ref).abs().max().item() > 100 * TOLERANCE


# --------------------------------------------------------------------------- (c) SamplerSwD

def test_sampler_custom_advanced_equals_swd_sampler(host, small, controlnets, vaes, text, hint_image):
    _transformer, patcher = small
    pos, neg = apply_controlnet(host, controlnets["instantx"][1], vaes[0], hint_image, conditioning(host, text), 0.9)
    latent = torch.zeros(1, 16, 32, 48)
    guider = host.node("CFGGuider").execute(patcher, pos, neg, 1.0).args[0]
    out = host.sampler_swd_custom_advanced(guider, PRESET, latent, 77)
    assert torch.equal(out, swd_sampler(host, patcher, pos, neg, latent, seed=77))


# --------------------------------------------------------------------------- (d) another family's ControlNet

def test_flux_controlnet_on_sd35_is_refused_naming_the_node(host):
    """The InstantX file on the SD3.5 stand-in checkpoint (its own VAE, SD3.5 preset), in the executor."""
    prompt = controlnet_prompt("instantx", model=("CheckpointLoaderSimple", {"ckpt_name": paths.SD3_CHECKPOINT}),
                               preset="SD3.5 Large, 6 steps", prefix="swd_flux_cn_sd3")
    prompt["clip"]["inputs"]["type"] = "sd3"
    prompt["vae"]["inputs"]["vae_name"] = paths.SD3_VAE
    executor, messages = host.run_prompt(prompt, "fcn-sd3")
    assert not executor.success
    (error,) = [m[1] for m in messages if m[0] == "execution_error"]
    assert error["node_id"] == "sampler" and error["node_type"] == "SwDSampler"
    message = error["exception_message"].rstrip()
    assert message == ("SwD Sampler: the positive conditioning has a FLUX ControlNet, but the model is SD3.5: "
                       "use a ControlNet made for SD3.5"), message


def test_flux_controlnet_on_sdxl_is_refused(host):
    """The check SwD Sampler and SamplerSwD run before the first step, with the loaded XLabs file and the
    SDXL family (the SDXL side of the sampler is ``test_sdxl_controlnet.py``'s)."""
    cn = host.node("ControlNetLoader")().load_controlnet(FILES["xlabs"])[0]
    pos, _ = host.node("ControlNetApplyAdvanced")().apply_controlnet(
        [[torch.zeros(1, 5, 768), {}]], [[torch.zeros(1, 5, 768), {}]], cn, torch.zeros(1, 64, 64, 3), 1.0, 0.0, 1.0)
    sdxl = next(f for f in host.swd_core.families.FAMILIES if f.name == "SDXL")
    check = host.pack.nodes.controlnet_check.check_controlnets
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler \(SAMPLER\): the positive conditioning has a "
                                                     r"FLUX ControlNet, but the model is SDXL: use a ControlNet made "
                                                     r"for SDXL$"):
        check({"positive": [pos[0][1]]}, sdxl, "SwD Sampler (SAMPLER)")
    flux_family = next(f for f in host.swd_core.families.FAMILIES if f.name == "FLUX")
    check({"positive": [pos[0][1]]}, flux_family, "SwD Sampler")  # its own family: let through


def test_sdxl_controlnet_on_flux_is_refused_naming_the_node(host):
    """The SDXL ControlNet stand-in file (a UNet ControlNet, pixel hint) on the FLUX file stand-in."""
    prompt = controlnet_prompt("xlabs", controlnet=paths.SDXL_CONTROLNET, prefix="swd_sdxl_cn_flux")
    del prompt["apply"]["inputs"]["vae"]
    executor, messages = host.run_prompt(prompt, "fcn-sdxl-on-flux")
    assert not executor.success
    (error,) = [m[1] for m in messages if m[0] == "execution_error"]
    assert error["node_id"] == "sampler" and error["node_type"] == "SwDSampler"
    assert error["exception_message"].rstrip() == ("SwD Sampler: the positive conditioning has an SD1.5/SDXL "
                                                   "ControlNet, but the model is FLUX: use a ControlNet made for FLUX")


@pytest.mark.parametrize("layout", ["instantx", "xlabs"])
def test_without_the_check_comfyui_fails_inside_the_controlnet(host, monkeypatch, layout):
    """Why the check exists: a FLUX ControlNet on SD3.5 with the check switched off stops in the
    ControlNet's guidance embedder (SD3.5's conditioning has no FLUX guidance) with a bare TypeError."""
    monkeypatch.setattr(host.pack.nodes.sampler, "check_controlnets", lambda *args: None)
    model, _clip, vae = host.node("CheckpointLoaderSimple")().load_checkpoint(paths.SD3_CHECKPOINT)[:3]
    cn = host.node("ControlNetLoader")().load_controlnet(FILES[layout])[0]
    cond = [[torch.zeros(1, 5, 4096), {"pooled_output": torch.zeros(1, 2048)}]]
    pos, neg = apply_controlnet(host, cn, vae, torch.rand(1, 64, 64, 3), cond, 1.0)
    with pytest.raises(TypeError, match=r"^unsupported operand type\(s\) for \*: 'float' and 'NoneType'$"):
        swd_sampler(host, model, pos, neg, torch.zeros(1, 16, 16, 16), 1, preset="SD3.5 Large, 6 steps")
