"""swd_core's family table, schedule families, the shared schedule parsing and CPU noise (no ComfyUI)."""
import pytest
import torch


def comfy_class(name, base=object):
    return type(name, (base,), {"__module__": "comfy.model_base"})


def test_presets_carry_the_family_they_were_published_for(core):
    names = {f.name for f in core.FAMILIES}
    assert {p.family for p in core.PRESETS.values()} == {"SD3.5", "FLUX", "SDXL"} <= names
    for family in ("FLUX", "SDXL"):
        assert {n for n, p in core.PRESETS.items() if p.family == family} == {n for n in core.PRESETS if family in n}
    assert core.parse_schedule("32, 64", "1, 0.5").family is None
    tail = core.truncate_for_denoise(core.PRESETS["SD3.5 Large, 6 steps"], 0.8)
    assert tail.family == "SD3.5"


def test_family_is_found_by_the_exact_comfyui_model_class(core):
    sd3, flux = comfy_class("SD3"), comfy_class("Flux")
    assert core.family_of_comfy_model(sd3).name == "SD3.5"
    assert core.family_of_comfy_model(flux).name == "FLUX"
    assert core.family_of_comfy_model(comfy_class("Flux2", flux)) is None  # a subclass is another model
    assert core.family_of_comfy_model(comfy_class("SDXL")).name == "SDXL"
    assert core.family_of_comfy_model(comfy_class("SDXL")).prediction == core.EPSILON
    assert core.family_of_comfy_model(comfy_class("BaseModel")) is None  # SD1.5 / SD2
    assert core.family_of_comfy_model(type("SD3", (), {"__module__": "elsewhere"})) is None


def test_messages_name_the_model_and_the_families(core):
    from importlib import import_module

    families = import_module(f"{core.__name__}.families")
    text = families.unsupported_model_message(comfy_class("BaseModel"), "SD15")
    assert text.startswith("the model is SD15 (comfy.model_base.BaseModel), which has no SwD schedule here")
    assert "SD3.5 (comfy.model_base.SD3)" in text and "FLUX (comfy.model_base.Flux)" in text
    assert "SDXL (comfy.model_base.SDXL)" in text
    flux = core.family_of_comfy_model(comfy_class("Flux"))
    assert "published for SD3.5 but the model is FLUX" in families.family_mismatch_message("SD3.5", flux)
    assert families.family_mismatch_message(None, flux) is None
    assert families.family_mismatch_message("FLUX", flux) is None


@pytest.mark.parametrize("scales,sigmas", [([32, 4096], [1, 0.5]), ([32, 48.5], [1, 0.5]), ([64, 32], [1, 0.5]),
                                           ([32, 64], [1, 0.5, 0.2, 0]), ([32, 64], [1, 1.5])])
def test_diffusers_entry_and_the_node_give_the_same_schedule_errors(core, scales, sigmas):
    from importlib import import_module

    common = import_module(f"{core.__name__}.diffusers.common")
    with pytest.raises(core.SwDError) as node:
        core.parse_schedule(", ".join(map(str, scales)), ", ".join(map(str, sigmas)))
    with pytest.raises(core.SwDError) as diffusers:
        common.resolve_schedule(scales=torch.tensor(scales, dtype=torch.float32), sigmas=sigmas)
    assert str(diffusers.value) == str(node.value)


def test_cpu_noise_ignores_a_default_device_set_elsewhere(core):
    expected = torch.randn((2, 3, 4), generator=torch.Generator().manual_seed(5))
    torch.set_default_device("meta")  # as a pack that sets a CUDA default device would
    try:
        draw = core.generator_noise(torch.Generator().manual_seed(5), "cpu")((2, 3, 4))
    finally:
        torch.set_default_device(None)
    assert draw.device.type == "cpu" and torch.equal(draw, expected)


def test_ddpm_times_become_host_sigmas(core):
    """SDXL's values are DDPM times t/1000: 1.0 is read as t 999 (one constant), the trailing 0 stays 0."""
    seen = []

    def sigma_at(t):
        seen.append(t)
        return t / 100

    assert core.ddpm_timesteps([1.0, 0.8, 0.6, 0.4, 0.0]) == [999, 800, 600, 400]
    assert core.model_sigmas([1.0, 0.8, 0.0], core.EPSILON, sigma_at) == [9.99, 8.0, 0.0]
    assert seen == [999, 800]
    assert core.model_sigmas([1.0, 0.8, 0.0], core.FLOW, sigma_at) == [1.0, 0.8, 0.0]  # flow: as written
    assert len(seen) == 2


def test_scales_for_host_sigmas_match_relatively(core):
    schedule = core.PRESETS["SDXL, 4 steps"]
    host = [14.6146, 5.1110, 2.2846, 1.1644, 0.0]
    assert core.scales_for_sigmas(schedule, host[2:], host) == (96, 128)
    assert core.scales_for_sigmas(schedule, [2.2847, 1.1644, 0.0], host) == (96, 128)  # float32 round-off
    with pytest.raises(core.SwDError, match="do not fit the schedule"):
        core.scales_for_sigmas(schedule, [3.0, 1.0, 0.0], host)
