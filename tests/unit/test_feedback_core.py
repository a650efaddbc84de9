"""What the nodes show the user, computed without ComfyUI: run cost, preset field texts, the
config-less PEFT LoRA note (swd_core.cost, swd_core.schedules.preset_texts, swd_core.lora)."""
import doctest

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import swd_core as core
from swd_core import cost
from swd_core import lora as swd_lora


def test_cost_is_the_area_of_every_step_over_the_final_one():
    sizes = core.latent_sizes([32, 48, 64, 80, 96, 128], 128, 128)
    assert core.full_size_steps(sizes) == (32**2 + 48**2 + 64**2 + 80**2 + 96**2 + 128**2) / 128**2  # 2.406
    assert core.describe_run(sizes) == ("6 steps, latent 32x32 → 48x48 → 64x64 → 80x80 → 96x96 → 128x128: "
                                        "≈ 2.4 full-size steps (cost by latent area)")
    assert core.describe_run(core.latent_sizes([64, 80, 96, 128], 128, 128)).endswith("≈ 2.2 full-size steps "
                                                                                     "(cost by latent area)")
    # width x height as ComfyUI writes sizes: a 1216x832 image's latent is 152 wide, 104 high
    assert core.describe_run([(52, 76), (104, 152)]).startswith("2 steps, latent 76x52 → 152x104: ≈ 1.2")
    assert core.describe_run([(128, 128)]) == "1 step, latent 128x128: ≈ 1.0 full-size steps (cost by latent area)"
    assert doctest.testmod(cost).failed == 0
    with pytest.raises(ValueError):
        core.full_size_steps([])


@given(st.lists(st.integers(1, 64), min_size=1, max_size=8, unique=True))
def test_cost_is_at_least_one_step_and_at_most_the_step_count(sides):
    sides = sorted(sides)
    sizes = [(s, s) for s in sides]
    assert 1 <= core.full_size_steps(sizes) <= len(sizes)


@pytest.mark.parametrize("name", list(core.PRESETS))
def test_preset_texts_read_back_as_the_preset(name):
    scales, sigmas = core.preset_texts(name)
    custom = core.get_schedule(core.CUSTOM, scales, sigmas)
    assert (custom.scales, custom.sigmas) == (core.PRESETS[name].scales, core.PRESETS[name].sigmas)


def test_preset_texts_of_the_default_preset_are_the_fields_defaults():
    """The default preset's texts are what the fields held before: workflows saved with it do not change."""
    assert core.preset_texts(core.DEFAULT_PRESET) == ("32, 48, 64, 80, 96, 128",
                                                       "1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0")
    assert core.preset_texts("SDXL, 4 steps") == ("64, 80, 96, 128", "1.0, 0.8, 0.6, 0.4, 0")


def _peft(width: int, blocks: int = 2, single: bool = False) -> dict:
    sd = {}
    names = [f"transformer_blocks.{i}.attn.to_q" for i in range(blocks)]
    names += ["single_transformer_blocks.0.attn.to_q"] if single else []
    for n in names:
        sd[f"base_model.model.{n}.lora_A.weight"] = torch.zeros(4, width)
        sd[f"base_model.model.{n}.lora_B.weight"] = torch.zeros(width, 4)
    return sd


def test_the_folder_name_or_the_tensor_shapes_name_the_published_repo():
    large, medium, flux = _peft(2432, blocks=38), _peft(1536, blocks=24), _peft(3072, single=True)
    assert swd_lora.is_peft_file(large) and not swd_lora.is_peft_file({"transformer.x.lora_A.weight": 0})
    mods = swd_lora.lora_modules
    # the folder says which one
    assert swd_lora.published_repos("swd-large-4-steps", mods(large)) == ["yresearch/swd-large-4-steps"]
    assert swd_lora.published_repos("models--yresearch--swd_flux", mods(flux)) == ["yresearch/swd_flux"]
    # else the shapes say which model: both SD3.5 Large repos, or the FLUX one
    assert swd_lora.published_repos("loras", mods(large)) == ["yresearch/swd-large-6-steps",
                                                             "yresearch/swd-large-4-steps"]
    assert swd_lora.published_repos("loras", mods(medium)) == ["yresearch/swd-medium-6-steps",
                                                              "yresearch/swd-medium-4-steps"]
    assert swd_lora.published_repos("my-loras", mods(flux)) == ["yresearch/swd_flux"]
    assert swd_lora.published_repos("loras", mods(_peft(640))) == []  # no published SwD LoRA fits


def test_the_missing_config_note_says_the_scale_and_where_the_config_comes_from():
    note = swd_lora.missing_config_note("swd-large-6-steps/adapter_model.safetensors", "swd-large-6-steps",
                                        swd_lora.lora_modules(_peft(2432, blocks=38)))
    assert note.startswith("no adapter_config.json beside swd-large-6-steps/adapter_model.safetensors and no "
                           "alpha keys: ran at scale 1 (lora_alpha = r")
    assert ("put adapter_config.json from https://huggingface.co/yresearch/swd-large-6-steps in the file's "
            "folder") in note
    unknown = swd_lora.missing_config_note("x.safetensors", "loras", swd_lora.lora_modules(_peft(640)))
    assert "from the LoRA's download page" in unknown
