"""SwD Sampler / SwD Sampler (SAMPLER) on input the scale-wise loop cannot honour: clear refusals,
and the LATENT keys, noise and progress bar handled as the stock samplers handle them."""
import dataclasses

import pytest
import torch

STANDIN = "swd-standin-sd35-transformer.safetensors"
SIX = "SD3.5 Large, 6 steps"


@pytest.fixture(scope="module")
def model(host):
    return host.node("UNETLoader")().load_unet(STANDIN, "default")[0]


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(11)
    pos = [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    neg = [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    return pos, neg


def swd(host, model, prompts, latent, cfg=1.0, seed=0):
    sched = host.node("SwDSchedule").execute(SIX, "", "").args[0]
    return host.node("SwDSampler").execute(model, *prompts, latent, sched, seed, cfg, "bicubic").args[0]


def custom_advanced(host, model, prompts, latent, noise, sigmas=None):
    sched, six = host.node("SwDSchedule").execute(SIX, "", "").args
    return host.node("SamplerCustomAdvanced").execute(
        noise, host.node("BasicGuider").execute(model, prompts[0]).args[0],
        host.node("SamplerSwD").execute(sched, "bicubic").args[0], six if sigmas is None else sigmas, latent).args[0]


def empty(*shape):
    return {"samples": torch.zeros(*shape)}


def test_disable_noise_is_refused(host, model, prompts):
    with pytest.raises(host.swd_core.SwDError, match=r"SwD Sampler \(SAMPLER\): the noise is all zeros"):
        custom_advanced(host, model, prompts, empty(1, 16, 32, 32), host.node("DisableNoise").execute().args[0])
    sched, six = host.node("SwDSchedule").execute(SIX, "", "").args
    with pytest.raises(host.swd_core.SwDError, match="add_noise off in SamplerCustom"):
        host.node("SamplerCustom").execute(model, False, 1, 1.0, *prompts,
                                           host.node("SamplerSwD").execute(sched, "bicubic").args[0], six,
                                           empty(1, 16, 32, 32))


def test_sampler_swd_refuses_a_splitsigmas_tail_on_an_empty_latent(host, model, prompts):
    six = host.node("SwDSchedule").execute(SIX, "", "").args[1]
    low = host.node("SplitSigmas").execute(six, 3).args[1]
    with pytest.raises(host.swd_core.SwDError,
                       match=r"sigmas start at 0\.7904, below the model's pure noise \(1\.0000\), but the latent "
                             r"is empty"):
        custom_advanced(host, model, prompts, empty(1, 16, 32, 32), host.node("RandomNoise").execute(1).args[0], low)


def test_latents_that_are_not_image_latents_are_refused(host, model, prompts, monkeypatch):
    with pytest.raises(host.swd_core.SwDError, match=r"SwD Sampler: the latent is 5-D \(1, 16, 1, 32, 32\)"):
        swd(host, model, prompts, empty(1, 16, 1, 32, 32))
    monkeypatch.setattr(model.model.diffusion_model, "patch_size", (1, 2, 2))  # as video models have
    with pytest.raises(host.swd_core.SwDError, match=r"patch_size is \(1, 2, 2\)"):
        swd(host, model, prompts, empty(1, 16, 32, 32))


def test_apg_with_momentum_is_refused_and_without_it_runs(host, model, prompts):
    with_momentum = host.node("APG").execute(model, 2.0, 15.0, 0.5).args[0]
    with pytest.raises(host.swd_core.SwDError, match="APG with momentum 0.5, .* set APG's momentum to 0"):
        swd(host, with_momentum, prompts, empty(1, 16, 32, 32), cfg=3.5)
    without = host.node("APG").execute(model, 2.0, 15.0, 0.0).args[0]
    out = swd(host, without, prompts, empty(1, 16, 32, 32), cfg=3.5)["samples"]
    assert out.shape == (1, 16, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("node", ["EasyCache", "LazyCache"])
def test_step_caches_are_refused(host, model, prompts, node):
    cached = host.node(node).execute(model, 0.2, 0.15, 0.95, False).args[0]
    with pytest.raises(host.swd_core.SwDError, match=f"SwD Sampler: the model has {node}, .* can skip nothing"):
        swd(host, cached, prompts, empty(1, 16, 32, 32))


def test_downscale_ratio_spacial_goes_to_fix_empty_latent_channels_where_accepted(host, model, prompts, monkeypatch):
    import comfy.sample

    plain = swd(host, model, prompts, empty(1, 16, 32, 32))
    # The installed ComfyUI (0.3.75 has no such parameter): the key is dropped, the picture unchanged.
    tagged = swd(host, model, prompts, {**empty(1, 16, 32, 32), "downscale_ratio_spacial": 8})
    assert "downscale_ratio_spacial" not in tagged and torch.equal(tagged["samples"], plain["samples"])
    # A newer ComfyUI's signature: the ratio is passed on, as its KSampler does.
    real, calls = comfy.sample.fix_empty_latent_channels, []

    def newer(model, latent_image, downscale_ratio_spacial=None):
        calls.append(downscale_ratio_spacial)
        return real(model, latent_image)

    monkeypatch.setattr(comfy.sample, "fix_empty_latent_channels", newer)
    out = swd(host, model, prompts, {**empty(1, 16, 32, 32), "downscale_ratio_spacial": 8})
    assert calls == [8] and "downscale_ratio_spacial" not in out and torch.equal(out["samples"], plain["samples"])


def test_swd_sampler_draws_no_full_size_noise(host, model, prompts, monkeypatch):
    """All noise comes from the seed, per scale; the stock full-size draw is not made (and not needed)."""
    import comfy.sample

    def refuse(*args, **kw):
        raise AssertionError("prepare_noise was called")

    expected = swd(host, model, prompts, empty(1, 16, 32, 32), seed=9)["samples"]
    monkeypatch.setattr(comfy.sample, "prepare_noise", refuse)
    assert torch.equal(swd(host, model, prompts, empty(1, 16, 32, 32), seed=9)["samples"], expected)


@pytest.mark.parametrize("enabled", [True, False])
def test_console_progress_bar_follows_comfyui_setting(host, model, prompts, monkeypatch, capfd, enabled):
    import comfy.utils

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_ENABLED", enabled)
    capfd.readouterr()
    swd(host, model, prompts, empty(1, 16, 32, 32))
    err = capfd.readouterr().err
    assert ("6/6" in err) == enabled, err


def test_categories_of_the_newest_frontend_and_aliases_where_supported(host):
    from comfy_api.latest import io

    schemas = {n: host.node(n).define_schema() for n in ("SwDSampler", "SamplerSwD", "SwDSchedule", "SwDLoraLoader")}
    assert {n: s.category for n, s in schemas.items()} == {
        "SwDSampler": "model/sampling", "SamplerSwD": "model/sampling/samplers",
        "SwDSchedule": "model/sampling/schedulers", "SwDLoraLoader": "model/loaders"}
    assert schemas["SamplerSwD"].display_name == "SwD Sampler (SAMPLER)"
    supported = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    for s in schemas.values():
        assert s.display_name.startswith("SwD ")
        assert ("SwD" in (getattr(s, "search_aliases", None) or [])) == supported

    @dataclasses.dataclass
    class NewerSchema:  # a Schema with the field, as in ComfyUI 0.38
        node_id: str
        search_aliases: list = dataclasses.field(default_factory=list)

    api = host.pack.nodes._api
    assert api.schema(node_id="x", search_aliases=["SwD"], schema_class=NewerSchema).search_aliases == ["SwD"]
