"""An SDXL ControlNet with SwD Sampler on SDXL: the pixel hint follows every scale, and the result
equals an independent diffusers reference.

Across scales (executor): the SDXL checkpoint (``harness.standins.sdxl``) and an SDXL ControlNet in the LDM layout
(``controlnet_state_dict``: ComfyUI's ``comfy.cldm.cldm.ControlNet`` for the checkpoint's UNet,
random weights), loaded by the stock ``ControlNetLoader`` and applied with ``ControlNetApplyAdvanced``.
ComfyUI's ``ControlNet.get_control`` rebuilds the hint whenever the latent's size changes: for a
UNet ControlNet (no VAE) it resizes the hint image to the latent's size x 8 pixels.

Parity: the small SDXL UNet of ``test_sdxl_parity`` with a diffusers ``ControlNetModel`` for it
(``sdxl_controlnet.build_controlnet``, random weights), written in the LDM layout (``controlnet_ldm_state_dict``)
and read by the stock ``ControlNetLoader``, applied with ``ControlNetApplyAdvanced``, against
``harness.reference.sdxl.swd_latents`` with the same ``ControlNetModel`` feeding
``down_block_additional_residuals`` / ``mid_block_additional_residual`` and the hint resized per scale
(``reference.sdxl.controlnet_hook``). fp32 on the CPU.
"""
import pytest
import safetensors.torch
import torch

from harness import paths
from harness.controlnet_spy import ControlNetSpy
from harness.reference import sdxl as reference
from harness.standins import sdxl, sdxl_controlnet

PRESET = "SDXL, 4 steps"


def prompt(controlnet: bool, prefix: str) -> dict:
    cond = ["pos", 0], ["neg", 0]
    if controlnet:
        cond = ["apply", 0], ["apply", 1]
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": paths.SDXL_CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house by a lake", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": PRESET, "scales": "", "sigmas": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 192, "batch_size": 1}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["ckpt", 0], "positive": cond[0], "negative": cond[1], "latent_image": ["latent", 0],
            "schedule": ["sched", 0], "seed": 5, "cfg": 1.0, "upscale_method": "bicubic"}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": prefix}},
    }
    if controlnet:
        graph.update({
            "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": paths.SDXL_CONTROLNET}},
            "image": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
            "apply": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "image": ["image", 0],
                "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
        })
    return graph


def saved_latent(host, executor):
    out = executor.history_result["outputs"]["save"]["latents"][0]
    return safetensors.torch.load_file(
        f"{host.folder_paths.get_output_directory()}/{out['subfolder']}/{out['filename']}")["latent_tensor"]


def test_sdxl_controlnet_hint_follows_every_scale(host, monkeypatch):
    import comfy.cldm.cldm

    spy = ControlNetSpy(monkeypatch, comfy.cldm.cldm.ControlNet)
    executor, messages = host.run_prompt(prompt(True, "swd_sdxl_cn/with"), "sdxl-cn")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    sizes = host.swd_core.latent_sizes(host.swd_core.PRESETS[PRESET].scales, 24, 32, 4)
    assert len(set(sizes)) == 4 and sizes[-1] == (24, 32)
    # one ControlNet call per step (cfg 1), the pixel hint at the latent's size x 8 every time
    assert [(size, hint[-2:]) for size, hint in spy.calls] == [((h, w), (h * 8, w * 8)) for h, w in sizes]
    assert spy.encodes == []  # SDXL ControlNets take the pixels
    with_cn = saved_latent(host, executor)
    executor, messages = host.run_prompt(prompt(False, "swd_sdxl_cn/without"), "sdxl-no-cn")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    without = saved_latent(host, executor)
    assert torch.isfinite(with_cn).all() and (with_cn - without).abs().max().item() > 1e-2


# --------------------------------------------------------------------------- against diffusers

TIMES = (1.0, 0.8, 0.6, 0.4, 0.0)
TOLERANCE = 1e-4
SMALL_CONTROLNET = "swd-small-sdxl-controlnet.safetensors"


@pytest.fixture(scope="module")
def small(host, tmp_path_factory):
    """The small SDXL UNet (diffusers + ComfyUI) and its ControlNet (diffusers + ComfyUI's ControlNetLoader)."""
    import comfy.model_management

    unet = sdxl.build_unet(seed=0)
    controlnet = sdxl_controlnet.build_controlnet(unet, seed=0)
    folder = tmp_path_factory.mktemp("sdxl_controlnet")
    ldm = sdxl_controlnet.controlnet_ldm_state_dict(controlnet, sdxl.comfy_unet_config(unet.config))
    safetensors.torch.save_file(ldm, folder / SMALL_CONTROLNET)
    with host.model_folder("controlnet", folder):
        loaded = host.node("ControlNetLoader")().load_controlnet(SMALL_CONTROLNET)[0]
    yield unet, sdxl.comfy_model(unet), controlnet, loaded
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(1, 7, 32, generator=g), torch.randn(1, sdxl.POOLED_FEATURES, generator=g),
            torch.randn(1, 7, 32, generator=g), torch.randn(1, sdxl.POOLED_FEATURES, generator=g)]


def conds(text):
    pos, pos_pooled, neg, neg_pooled = text
    return [[pos, {"pooled_output": pos_pooled}]], [[neg, {"pooled_output": neg_pooled}]]


def swd_sampler(host, model, positive, negative, latent, seed, cfg):
    out = host.node("SwDSampler").execute(model, positive, negative, {"samples": latent}, host.swd_core.PRESETS[PRESET],
                                          seed, cfg, "bicubic")
    return out.args[0]["samples"]


def test_small_controlnet_loads_as_comfyuis_unet_controlnet(small):
    import comfy.cldm.cldm

    _, _, controlnet, loaded = small
    assert type(loaded.control_model) is comfy.cldm.cldm.ControlNet and loaded.control_model.dtype == torch.float32
    on_comfy = loaded.control_model.state_dict()
    assert len(on_comfy) == len(controlnet.state_dict())  # every weight of the diffusers model, nothing else
    assert on_comfy["zero_convs.0.0.weight"].abs().sum() > 0  # not a zero-initialised ControlNet


@pytest.mark.parametrize(("batch", "height", "width", "sizes", "cfg", "strength"), [
    (1, 32, 48, [(16, 24), (20, 30), (24, 36), (32, 48)], 1.0, 0.7),
    (2, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], 3.0, 1.0),
], ids=["non-square-cfg1", "batch2-cfg3"])
def test_same_latent_as_diffusers_with_controlnet(host, small, text, hint_image, batch, height, width, sizes, cfg,
                                                  strength):
    unet, patcher, controlnet, loaded = small
    pos, neg = conds(text)
    pos_cn, neg_cn = host.node("ControlNetApplyAdvanced")().apply_controlnet(pos, neg, loaded, hint_image, strength,
                                                                              0.0, 1.0)
    seed = 31 + batch
    latent = swd_sampler(host, patcher, pos_cn, neg_cn, torch.zeros(batch, 4, height, width), seed, cfg)
    ours = patcher.model.process_latent_in(latent.float())
    hook = reference.controlnet_hook(controlnet, hint_image.movedim(-1, 1), conditioning_scale=strength)
    ref = reference.swd_latents(unet, TIMES, sizes, text[0], text[1], batch=batch, seed=seed, cfg=cfg,
                                neg_embeds=text[2], neg_pooled=text[3], controlnet=hook)
    diff = (ours - ref).abs().max().item()
    print(f"\nSDXL ControlNet, {batch}x{height}x{width} cfg {cfg} strength {strength}: max |d| {diff:.2e} "
          f"(reference max |latent| {ref.abs().max().item():.1f})")
    assert diff <= TOLERANCE
    # the ControlNet changed the picture (the comparison is not ControlNet-blind)
    plain = reference.swd_latents(unet, TIMES, sizes, text[0], text[1], batch=batch, seed=seed, cfg=cfg,
                                  neg_embeds=text[2], neg_pooled=text[3])
    assert (plain - ref).abs().max().item() > 100 * TOLERANCE


def test_strength_zero_is_no_controlnet(host, small, text, hint_image):
    _, patcher, _, loaded = small
    pos, neg = conds(text)
    pos_cn, neg_cn = host.node("ControlNetApplyAdvanced")().apply_controlnet(pos, neg, loaded, hint_image, 0.0,
                                                                              0.0, 1.0)
    latent = torch.zeros(1, 4, 32, 32)
    assert torch.equal(swd_sampler(host, patcher, pos_cn, neg_cn, latent, 8, 1.0),
                       swd_sampler(host, patcher, pos, neg, latent, 8, 1.0))
