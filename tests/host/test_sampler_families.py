"""Model families: SwD runs on the families of swd_core.families and refuses other models by name.

The refused SD models are built small through ComfyUI's own model classes with an explicit
configuration (`comfy.supported_models.<Config>(unet_config).get_model({})`): the model type is what
matters here, not the weights. The FLUX model is the small FLUX stand-in (`harness.standins.flux`),
built as a file is loaded: its weights in the published layout, its configuration from ComfyUI's own
detection (which supplies what each ComfyUI version needs, e.g. `txt_ids_dims` since 0.8).
"""
import re

import pytest
import torch

STANDIN = "swd-standin-sd35-transformer.safetensors"
UNET = {  # a two-level SD UNet, about 1M parameters
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
    "num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [0, 1],
    "transformer_depth_output": [0, 0, 1, 1],
    "transformer_depth_middle": 1, "use_spatial_transformer": True, "legacy": False, "use_linear_in_transformer": False,
    "context_dim": 64, "num_heads": -1, "num_head_channels": 32, "adm_in_channels": None, "dtype": torch.float32,
}


def build(kind):
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    if kind == "FLUX":  # hidden size 64, text context 64, pooled 32 (flux.SMALL_CONFIG)
        from harness.standins import flux

        return flux.comfy_model(flux.build_transformer())
    sdxl = {**UNET, "adm_in_channels": 2816, "num_classes": "sequential"}
    config = {"SD15": (comfy.supported_models.SD15, UNET), "SDXL": (comfy.supported_models.SDXL, sdxl)}[kind]
    model = config[0](dict(config[1])).get_model({})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # ComfyUI's layers skip weight init (weights come from a file): set random ones
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def conds(context, pooled, **extra):
    g = torch.Generator().manual_seed(0)
    c = [[torch.randn(1, 5, context, generator=g), {"pooled_output": torch.randn(1, pooled, generator=g), **extra}]]
    return c, [[torch.zeros(1, 5, context), {"pooled_output": torch.zeros(1, pooled), **extra}]]


def schedule(host, preset="SD3.5 Large, 6 steps", scales="", sigmas=""):
    return host.node("SwDSchedule").execute(preset, scales, sigmas).args


@pytest.mark.parametrize("kind,cls", [("SD15", "comfy.model_base.BaseModel")])
def test_swd_sampler_refuses_models_without_an_swd_schedule(host, kind, cls):
    pos, neg = conds(64, 2048)
    with pytest.raises(host.swd_core.SwDError,
                       match=re.escape(f"SwD Sampler: the model is {kind} ({cls}), which has no SwD schedule here")):
        host.node("SwDSampler").execute(build(kind), pos, neg, {"samples": torch.zeros(1, 4, 32, 32)},
                                        schedule(host)[0], 0, 1.0, "bicubic")


@pytest.mark.parametrize("kind,cls", [("SD15", "comfy.model_base.BaseModel")])
def test_sampler_swd_in_sampler_custom_advanced_refuses_them_too(host, kind, cls):
    pos, _ = conds(64, 2048)
    sched, sigmas = schedule(host)
    model = build(kind)
    with pytest.raises(host.swd_core.SwDError, match=re.escape(f"SwD Sampler (SAMPLER): the model is {kind} ({cls})")):
        host.node("SamplerCustomAdvanced").execute(
            host.node("RandomNoise").execute(1).args[0], host.node("BasicGuider").execute(model, pos).args[0],
            host.node("SamplerSwD").execute(sched, "bicubic").args[0], sigmas,
            {"samples": torch.zeros(1, 4, 32, 32)})


def test_families_of_the_stand_in_and_of_flux(host):
    base = host.node("UNETLoader")().load_unet(STANDIN, "default")[0]
    assert host.swd_core.family_of_comfy_model(type(base.model)).name == "SD3.5"
    assert host.swd_core.family_of_comfy_model(type(build("FLUX").model)).name == "FLUX"


def test_flux_runs_with_a_custom_schedule_and_an_sd35_preset_is_named_on_the_node(host):
    model = build("FLUX")
    pos, neg = conds(64, 32, guidance=3.5)
    latent = {"samples": torch.zeros(1, 16, 32, 32)}
    custom = schedule(host, "custom", "16, 24, 32", "1.0, 0.8, 0.6")[0]
    out = host.node("SwDSampler").execute(model, pos, neg, latent, custom, 3, 1.0, "bicubic")
    shown = out.ui.as_dict()["text"][0]  # a custom schedule has no family to disagree with
    assert "Warning" not in shown and "Ran with FLUX guidance 3.5" in shown
    samples = out.args[0]["samples"]
    assert samples.shape == (1, 16, 32, 32) and torch.isfinite(samples).all()
    out = host.node("SwDSampler").execute(model, pos, neg, latent, schedule(host)[0], 3, 1.0, "bicubic")
    assert out.args[0]["samples"].shape == (1, 16, 32, 32)
    text = out.ui.as_dict()["text"][0]
    assert "published for SD3.5 but the model is FLUX" in text


def test_sdxl_runs_its_preset_and_a_flow_preset_is_named_on_the_node(host):
    """SDXL (EPS) runs the SDXL preset quietly; an SD3.5 (flow) preset runs but is named on the node."""
    model = build("SDXL")
    pos, neg = conds(64, 1280)
    latent = {"samples": torch.zeros(1, 4, 32, 32)}
    out = host.node("SwDSampler").execute(model, pos, neg, latent, schedule(host, "SDXL, 4 steps")[0], 3, 1.0,
                                          "bicubic")
    assert torch.isfinite(out.args[0]["samples"]).all()  # quietly: the node states the run, no warning
    assert out.ui.as_dict()["text"][0] == "4 steps, latent 16x16 → 20x20 → 24x24 → 32x32: ≈ 2.2 full-size steps " \
                                          "(cost by latent area)"
    out = host.node("SwDSampler").execute(model, pos, neg, latent, schedule(host)[0], 3, 1.0, "bicubic")
    assert "Warning: the schedule was published for SD3.5 but the model is SDXL" in out.ui.as_dict()["text"][0]


def test_an_sdxl_preset_on_a_flow_model_is_named_on_the_node(host):
    model = build("FLUX")
    pos, neg = conds(64, 32, guidance=4.5)
    out = host.node("SwDSampler").execute(model, pos, neg, {"samples": torch.zeros(1, 16, 32, 32)},
                                          schedule(host, "SDXL, 4 steps")[0], 3, 1.0, "bicubic")
    assert "published for SDXL but the model is FLUX" in out.ui.as_dict()["text"][0]
