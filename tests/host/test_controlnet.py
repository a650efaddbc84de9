"""SD3 ControlNets with SwD Sampler / SamplerSwD, in the real ComfyUI host, on the stand-ins.

The stand-in ControlNet (``harness.standins.sd3_controlnet``) is a diffusers
``SD3ControlNetModel`` file, which ComfyUI's stock ``ControlNetLoader`` loads as an SD3
ControlNet (``comfy.cldm.mmdit.ControlNet``, hint VAE-encoded, latent format SD3 with shift 0).

* the hint follows the latent: ``ControlNet.get_control`` rebuilds it whenever the latent's size
  changes, so SwD's scales each get one resize (``common_upscale``, nearest-exact, centre crop)
  and one VAE encode of the hint image at ``latent size * 8`` pixels;
* the result equals a diffusers reference (``harness.reference.sd3``: ``SD3Transformer2DModel``
  + ``SD3ControlNetModel`` + ``FlowMatchLCMScheduler``, the hint image resized and VAE-encoded
  per scale as ComfyUI does it) within 1e-4 (fp32);
* SamplerSwD in SamplerCustomAdvanced gives SwD Sampler's latent with the ControlNet too;
* a ControlNet of another family (the SD3 ControlNet on a FLUX model) is refused naming the node.

Not the diffusers *pipeline*: ``StableDiffusion3ControlNetPipeline`` encodes the hint once, at
the output size, and samples the VAE's latent distribution (``latent_dist.sample()``) where
ComfyUI takes its mean; the reference takes the mean and re-encodes per scale (SwD has no
diffusers ControlNet pipeline).
"""
from __future__ import annotations

import pytest
import safetensors.torch
import torch
from diffusers import AutoencoderKL, SD3ControlNetModel, SD3Transformer2DModel

from harness import paths
from harness.controlnet_spy import ControlNetSpy
from harness.reference import sd3 as reference
from harness.standins import sd3 as standins
from harness.standins import sd3_controlnet

SIX = "SD3.5 Large, 6 steps"
CONTROLNET = paths.SD3_CONTROLNET
CHECKPOINT = paths.SD3_CHECKPOINT


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def checkpoint(host):
    model, _clip, vae = host.node("CheckpointLoaderSimple")().load_checkpoint(CHECKPOINT)[:3]
    return model, vae


@pytest.fixture(scope="module")
def controlnet(host):
    return host.node("ControlNetLoader")().load_controlnet(CONTROLNET)[0]


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(11)
    return {k: torch.randn(shape, generator=g) for k, shape in
            [("pos", (1, 30, 4096)), ("pos_pooled", (1, 2048)), ("neg", (1, 30, 4096)), ("neg_pooled", (1, 2048))]}


@pytest.fixture(scope="module")
def diffusers_models():
    transformer = SD3Transformer2DModel.from_pretrained(paths.MODELS / standins.TRANSFORMER_DIR).eval()
    vae = AutoencoderKL.from_pretrained(paths.MODELS / standins.VAE_DIR).eval()
    cn = SD3ControlNetModel(**sd3_controlnet.CONTROLNET_CONFIG).eval()
    cn.load_state_dict(safetensors.torch.load_file(paths.MODELS / sd3_controlnet.CONTROLNET_FILE), strict=True)
    return transformer, vae, cn


def conds(prompts):
    return ([[prompts["pos"], {"pooled_output": prompts["pos_pooled"]}]],
            [[prompts["neg"], {"pooled_output": prompts["neg_pooled"]}]])


def apply_controlnet(host, controlnet, vae, image, pos, neg, strength=1.0, node="ControlNetApplyAdvanced"):
    if node == "ControlNetApplySD3":
        return host.node(node).execute(pos, neg, controlnet, image, strength, 0.0, 1.0, vae=vae).args
    return host.node(node)().apply_controlnet(pos, neg, controlnet, image, strength, 0.0, 1.0, vae=vae)


def swd_sampler(host, model, pos, neg, latent, seed, cfg, preset=SIX):
    schedule = host.node("SwDSchedule").execute(preset, "", "").args[0]
    return host.node("SwDSampler").execute(model, pos, neg, {"samples": latent}, schedule, seed, cfg,
                                           "bicubic").args[0]["samples"]


def sizes_of(host, preset, height, width):
    return host.swd_core.latent_sizes(host.swd_core.PRESETS[preset].scales, height, width)


# --------------------------------------------------------------------------- the stand-in

def test_standin_loads_as_an_sd3_controlnet(host, caplog):
    """ComfyUI's own loader takes the file for an SD3 diffusers ControlNet, every key used."""
    import comfy.cldm.mmdit
    import comfy.controlnet
    import comfy.latent_formats

    with caplog.at_level("DEBUG"):
        cn = comfy.controlnet.load_controlnet(str(paths.MODELS / sd3_controlnet.CONTROLNET_FILE))
    assert type(cn) is comfy.controlnet.ControlNet and type(cn.control_model) is comfy.cldm.mmdit.ControlNet
    assert isinstance(cn.latent_format, comfy.latent_formats.SD3) and cn.latent_format.shift_factor == 0
    assert (cn.compression_ratio, cn.upscale_algorithm) == (1, "nearest-exact")
    assert len(cn.control_model.joint_blocks) == 1 and cn.control_model.depth == 2  # the stand-in MMDiT's depth
    assert not [r for r in caplog.records if "controlnet keys" in r.getMessage()]
    # deterministic: the builder gives the file's tensors again
    again = sd3_controlnet.state_dict(sd3_controlnet.build_controlnet(0))
    on_disk = safetensors.torch.load_file(paths.MODELS / sd3_controlnet.CONTROLNET_FILE)
    assert again.keys() == on_disk.keys() and all(torch.equal(again[k], on_disk[k]) for k in again)
    assert on_disk["controlnet_blocks.0.weight"].abs().sum() > 0  # not diffusers' zero init


# --------------------------------------------------------------------------- (a) executor: a hint per scale

def controlnet_prompt(*, apply_node="ControlNetApplySD3", width=256, height=192, seed=3, prefix="swd_cn",
                      model=("CheckpointLoaderSimple", {"ckpt_name": CHECKPOINT}), cfg=1.0, controlnet=CONTROLNET):
    """Checkpoint + CLIP-L stand-in + ControlNetLoader + LoadImage(example.png) + Apply ControlNet
    (with the checkpoint's VAE) + SwD Sampler + SaveLatent (API format)."""
    apply_inputs = {"positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "vae": ["vae", 0],
                    "image": ["image", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}
    return {
        "model": {"class_type": model[0], "inputs": model[1]},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": paths.SD3_VAE}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": paths.CLIP_L, "type": "sd3"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house by a lake", "clip": ["clip", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["clip", 0]}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": controlnet}},
        "image": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "apply": {"class_type": apply_node, "inputs": apply_inputs},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": SIX, "scales": "", "sigmas": ""}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height,
                                                                   "batch_size": 1}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["model", 0], "positive": ["apply", 0], "negative": ["apply", 1],
            "latent_image": ["latent", 0], "schedule": ["sched", 0], "seed": seed, "cfg": cfg,
            "upscale_method": "bicubic"}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": prefix}},
    }


@pytest.mark.parametrize("apply_node", ["ControlNetApplySD3", "ControlNetApplyAdvanced"])
def test_hint_is_rebuilt_at_every_scale(host, monkeypatch, apply_node):
    """ComfyUI's executor, stock nodes: one hint resize + VAE encode per scale, each at the scale's
    latent size * 8 pixels, and the ControlNet's hint latent at the latent's size at every step."""
    import comfy.cldm.mmdit

    spy = ControlNetSpy(monkeypatch, comfy.cldm.mmdit.ControlNet)
    executor, messages = host.run_prompt(controlnet_prompt(apply_node=apply_node), f"cn-{apply_node}")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    sizes = sizes_of(host, SIX, 192 // 8, 256 // 8)
    assert len(set(sizes)) == 6 and sizes[-1] == (24, 32)
    # one ControlNet call per step (cfg 1: the negative is not evaluated), the hint at the latent's size
    assert [c[0] for c in spy.calls] == sizes
    assert [c[1] for c in spy.calls] == [(1, 16, h, w) for h, w in sizes]
    # one VAE encode per scale, of the hint image resized to the scale's pixels (nothing else encodes)
    assert spy.encodes == [(h * 8, w * 8) for h, w in sizes]


# --------------------------------------------------------------------------- (b) against diffusers

def reference_latent(host, models, prompts, image, batch, height, width, seed, cfg, strength, preset=SIX):
    transformer, vae, cn = models
    sched = host.swd_core.PRESETS[preset]
    sizes = sizes_of(host, preset, height, width)
    pixels = image.movedim(-1, 1)
    cache = {}

    def hint_for_size(size):
        if size not in cache:
            cache[size] = reference.hint_latent(vae, pixels, size)
        return cache[size]

    latents = reference.swd_latents(
        transformer, sched.sigmas, sizes, prompts["pos"], prompts["pos_pooled"], batch=batch, seed=seed, cfg=cfg,
        neg_embeds=prompts["neg"], neg_pooled=prompts["neg_pooled"],
        scale_factors=[s / sched.scales[0] for s in sched.scales[1:]],
        controlnet=reference.controlnet_hook(cn, hint_for_size, conditioning_scale=strength))
    return reference.to_comfy_latent(latents), cache


def test_resize_matches_comfy_common_upscale(hint_image):
    import comfy.utils

    pixels = hint_image.movedim(-1, 1)
    for h, w in [(48, 64), (64, 48), (72, 96), (256, 256), (100, 140)]:
        ours = reference.resize_hint(pixels, h, w)
        assert torch.equal(ours, comfy.utils.common_upscale(pixels, w, h, "nearest-exact", "center"))


@pytest.mark.parametrize("cfg,batch,height,width", [(1.0, 1, 32, 48), (3.5, 2, 32, 32)])
def test_same_latent_as_diffusers_with_controlnet(host, monkeypatch, checkpoint, controlnet, hint_image, prompts,
                                                  diffusers_models, cfg, batch, height, width):
    model, vae = checkpoint
    strength = 0.7
    import comfy.cldm.mmdit

    spy = ControlNetSpy(monkeypatch, comfy.cldm.mmdit.ControlNet)
    pos, neg = apply_controlnet(host, controlnet, vae, hint_image, *conds(prompts), strength=strength)
    ours = swd_sampler(host, model, pos, neg, torch.zeros(batch, 16, height, width), seed=21, cfg=cfg)
    ref, ref_hints = reference_latent(host, diffusers_models, prompts, hint_image, batch, height, width, 21, cfg,
                                      strength)
    # the hint latents first (a mismatch here would explain one below)
    assert set(spy.hints) == set(ref_hints)
    for size, hint in spy.hints.items():
        assert (hint[:1] - ref_hints[size]).abs().max().item() <= 1e-4, size
    assert ours.shape == ref.shape == (batch, 16, height, width)
    assert (ours - ref).abs().max().item() <= 1e-4
    # the ControlNet has an effect (its stand-in is not zero-initialised)
    plain = swd_sampler(host, model, *conds(prompts), torch.zeros(batch, 16, height, width), seed=21, cfg=cfg)
    assert (plain - ours).abs().max().item() > 1e-2


# --------------------------------------------------------------------------- (c) SamplerSwD

def test_sampler_custom_advanced_equals_swd_sampler(host, checkpoint, controlnet, hint_image, prompts):
    model, vae = checkpoint
    pos, neg = apply_controlnet(host, controlnet, vae, hint_image, *conds(prompts), strength=0.9)
    latent = torch.zeros(1, 16, 24, 32)
    guider = host.node("CFGGuider").execute(model, pos, neg, 1.0).args[0]
    out = host.sampler_swd_custom_advanced(guider, SIX, latent, 77)
    assert torch.equal(out, swd_sampler(host, model, pos, neg, latent, seed=77, cfg=1.0))


# --------------------------------------------------------------------------- (d) another family's ControlNet

FLUX_MODEL = ("UNETLoader", {"unet_name": paths.FLUX_DIFFUSION_MODEL, "weight_dtype": "default"})


def flux_prompt(**kw):
    """The ControlNet prompt on the FLUX stand-in (CLIP-L as its text encoder) with the SD3 ControlNet."""
    prompt = controlnet_prompt(model=FLUX_MODEL, **kw)
    prompt["clip"]["inputs"]["type"] = "stable_diffusion"
    prompt["sched"]["inputs"]["preset"] = "FLUX.1-dev, 4 steps"
    return prompt


def test_sd3_controlnet_on_flux_is_refused_naming_the_node(host):
    """Without the check, ComfyUI 0.3.75 stops inside the ControlNet's pooled-text embedder with
    torch's "mat1 and mat2 shapes cannot be multiplied (1x768 and 2048x128)"."""
    executor, messages = host.run_prompt(flux_prompt(), "cn-flux")
    assert not executor.success
    (error,) = [m[1] for m in messages if m[0] == "execution_error"]
    assert error["node_id"] == "sampler" and error["node_type"] == "SwDSampler"
    message = error["exception_message"]
    assert message.startswith("SwD Sampler: the positive conditioning has an SD3 ControlNet"), message
    assert "the model is FLUX" in message and "shapes" not in message
    # the host goes on: the next prompt runs
    executor, messages = host.run_prompt(controlnet_prompt(prefix="swd_cn_after"), "cn-after")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]


def test_sampler_custom_advanced_refuses_it_too(host, controlnet, checkpoint, hint_image):
    _model, vae = checkpoint
    flux = host.node("UNETLoader")().load_unet(paths.FLUX_DIFFUSION_MODEL, "default")[0]
    cond = [[torch.zeros(1, 5, 768), {"pooled_output": torch.zeros(1, 768)}]]
    pos, _ = apply_controlnet(host, controlnet, vae, hint_image, cond, cond)
    guider = host.node("BasicGuider").execute(flux, pos).args[0]
    with pytest.raises(host.swd_core.SwDError, match=r"^SwD Sampler \(SAMPLER\): the positive conditioning has an "
                                                     r"SD3 ControlNet, but the model is FLUX"):
        host.sampler_swd_custom_advanced(guider, "FLUX.1-dev, 4 steps", torch.zeros(1, 16, 16, 16), 1)


def test_without_the_check_comfyui_fails_with_a_bare_shape_error(host, monkeypatch, controlnet, checkpoint,
                                                                  hint_image):
    """Why the check exists: the same graph with it switched off."""
    monkeypatch.setattr(host.pack.nodes.sampler, "check_controlnets", lambda *args: None)
    _model, vae = checkpoint
    flux = host.node("UNETLoader")().load_unet(paths.FLUX_DIFFUSION_MODEL, "default")[0]
    cond = [[torch.zeros(1, 5, 768), {"pooled_output": torch.zeros(1, 768)}]]
    pos, neg = apply_controlnet(host, controlnet, vae, hint_image, cond, cond)
    schedule = host.node("SwDSchedule").execute("FLUX.1-dev, 4 steps", "", "").args[0]
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(1x768 and 2048x128\)"):
        host.node("SwDSampler").execute(flux, pos, neg, {"samples": torch.zeros(1, 16, 16, 16)}, schedule, 1, 1.0,
                                        "bicubic")


@pytest.mark.parametrize("module,cls,attr,kind", [
    ("comfy.cldm.cldm", "ControlNet", "control_model", "an SD1.5/SDXL ControlNet"),
    ("comfy.t2i_adapter.adapter", "Adapter", "t2i_model", "an SD1.5/SDXL T2I-Adapter"),
])
def test_sd_controlnets_are_refused_on_sd3_and_flux(host, module, cls, attr, kind):
    """The check reads the class of each control's model (the whole previous_controlnet chain);
    uninitialised instances of ComfyUI's own classes stand for loaded ones here."""
    import importlib
    from types import SimpleNamespace

    check = host.pack.nodes.controlnet_check.check_controlnets
    families = {f.name: f for f in host.swd_core.families.FAMILIES}
    foreign = SimpleNamespace(**{attr: object.__new__(getattr(importlib.import_module(module), cls))},
                              previous_controlnet=None)
    import comfy.cldm.mmdit

    sd3 = SimpleNamespace(control_model=object.__new__(comfy.cldm.mmdit.ControlNet), previous_controlnet=foreign)
    for family, control in (("SD3.5", sd3), ("FLUX", foreign)):
        with pytest.raises(host.swd_core.SwDError, match=f"^SwD Sampler: the negative conditioning has {kind}, "
                                                         f"but the model is {family}: use a ControlNet made for"):
            check({"positive": [{}], "negative": [{"control": control}]}, families[family], "SwD Sampler")
    check({"positive": [{"control": SimpleNamespace(control_model=sd3.control_model)}]}, families["SD3.5"], "x")
    check({"positive": [{"control": SimpleNamespace(unknown=1)}]}, families["SD3.5"], "x")  # a pack's own: let go


def test_sdxl_takes_unet_controlnets_and_refuses_an_sd3_one(host):
    from types import SimpleNamespace

    import comfy.cldm.cldm
    import comfy.cldm.mmdit

    check = host.pack.nodes.controlnet_check.check_controlnets
    sdxl = next(f for f in host.swd_core.families.FAMILIES if f.name == "SDXL")
    unet_cn = SimpleNamespace(control_model=object.__new__(comfy.cldm.cldm.ControlNet), previous_controlnet=None)
    check({"positive": [{"control": unet_cn}]}, sdxl, "SwD Sampler")
    sd3 = SimpleNamespace(control_model=object.__new__(comfy.cldm.mmdit.ControlNet), previous_controlnet=None)
    with pytest.raises(host.swd_core.SwDError, match="has an SD3 ControlNet, but the model is SDXL"):
        check({"positive": [{"control": sd3}]}, sdxl, "SwD Sampler")


# --------------------------------------------------------------------------- Stability's SD3.5 layout

def test_stability_sd35_controlnet_layout_follows_every_scale(host, monkeypatch):
    """A ControlNet in the layout of Stability's ``sd3.5_large_controlnet_canny.safetensors`` (the file the
    shipped workflow names; stand-in ``harness.standins.sd3_controlnet.sd35_state_dict``): ComfyUI loads it
    as ``ControlNetSD35`` (``ControlNetEmbedder``, the model's ``x_embedder`` lent at run time, canny
    preprocessing); with SwD Sampler its hint is resized and VAE-encoded at every scale and reaches the
    embedder at the latent's size; the picture differs from the one without the ControlNet."""
    import comfy.cldm.dit_embedder
    import comfy.controlnet

    cn = comfy.controlnet.load_controlnet(str(paths.MODELS / sd3_controlnet.SD35_CONTROLNET_FILE))
    assert type(cn).__name__ == "ControlNetSD35"
    assert type(cn.control_model) is comfy.cldm.dit_embedder.ControlNetEmbedder
    calls, encodes = [], []
    real_forward = comfy.cldm.dit_embedder.ControlNetEmbedder.forward

    def forward(model, x, *args, hint=None, **kw):
        out = real_forward(model, x, *args, hint=hint, **kw)
        calls.append((tuple(x.shape[-2:]), tuple(hint.shape[-2:]), float(out["output"][0].abs().max())))
        return out

    monkeypatch.setattr(comfy.cldm.dit_embedder.ControlNetEmbedder, "forward", forward)
    import comfy.sd

    real_encode = comfy.sd.VAE.encode
    monkeypatch.setattr(comfy.sd.VAE, "encode", lambda vae, px: encodes.append(tuple(px.shape[1:3]))
                        or real_encode(vae, px))
    prompt = controlnet_prompt(apply_node="ControlNetApplyAdvanced", controlnet=paths.SD35_CONTROLNET,
                               prefix="swd_cn35")
    executor, messages = host.run_prompt(prompt, "cn-sd35")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    sizes = sizes_of(host, SIX, 192 // 8, 256 // 8)
    assert [c[:2] for c in calls] == [(s, s) for s in sizes]
    assert all(c[2] > 0 for c in calls)  # the embedder adds something to the model's blocks at every scale
    assert encodes == [(h * 8, w * 8) for h, w in sizes]
