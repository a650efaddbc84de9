"""An SDXL ControlNet with SwD Sampler on SDXL: the pixel hint follows every scale.

Stand-ins: the SDXL checkpoint (``harness.standins.sdxl``) and an SDXL ControlNet in the LDM layout
(``controlnet_state_dict``: ComfyUI's ``comfy.cldm.cldm.ControlNet`` for the checkpoint's UNet,
random weights), loaded by the stock ``ControlNetLoader`` and applied with ``ControlNetApplyAdvanced``.
ComfyUI's ``ControlNet.get_control`` rebuilds the hint whenever the latent's size changes: for a
UNet ControlNet (no VAE) it resizes the hint image to the latent's size x 8 pixels. There is no
diffusers reference here (the SD3.5 ControlNet tests compare with one).
"""
import safetensors.torch
import torch

from harness import paths

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

    calls = []
    real_forward = comfy.cldm.cldm.ControlNet.forward

    def forward(model, x, hint, *args, **kwargs):
        calls.append((tuple(x.shape[-2:]), tuple(hint.shape[-2:])))
        return real_forward(model, x, hint, *args, **kwargs)

    monkeypatch.setattr(comfy.cldm.cldm.ControlNet, "forward", forward)
    executor, messages = host.run_prompt(prompt(True, "swd_sdxl_cn/with"), "sdxl-cn")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    sizes = host.swd_core.latent_sizes(host.swd_core.PRESETS[PRESET].scales, 24, 32, 4)
    assert len(set(sizes)) == 4 and sizes[-1] == (24, 32)
    # one ControlNet call per step (cfg 1), the pixel hint at the latent's size x 8 every time
    assert calls == [((h, w), (h * 8, w * 8)) for h, w in sizes]
    with_cn = saved_latent(host, executor)
    executor, messages = host.run_prompt(prompt(False, "swd_sdxl_cn/without"), "sdxl-no-cn")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    without = saved_latent(host, executor)
    assert torch.isfinite(with_cn).all() and (with_cn - without).abs().max().item() > 1e-2
