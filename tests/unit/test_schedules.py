"""swd_core.schedules: presets, parsing, validation messages and per-step sizes (no ComfyUI)."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import swd_core as core

SwDError = core.SwDError

PUBLISHED = {  # the upstream READMEs / model cards, latent sizes at 1024x1024
    "SD3.5 Large, 6 steps": ([32, 48, 64, 80, 96, 128], [1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0]),
    "SD3.5 Large, 4 steps": ([64, 80, 96, 128], [1.0, 0.8959, 0.7371, 0.6022, 0]),
    "SD3.5 Large, 4 steps (README code sigmas)": ([64, 80, 96, 128], [1.0, 0.8956, 0.7363, 0.6007, 0]),
    "SD3.5 Medium, 6 steps": ([32, 48, 64, 80, 96, 128], [1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0]),
    "SD3.5 Medium, 4 steps": ([64, 80, 96, 128], [1.0, 0.8959, 0.7371, 0.6022, 0]),
    "SD3.5 Medium, 4 steps (first README)": ([32, 64, 96, 128], [1.0, 0.9454, 0.7904, 0.6022, 0]),
    "FLUX.1-dev, 4 steps": ([64, 80, 96, 128], [1.0, 0.8959, 0.7371, 0.6022, 0]),
    "FLUX.1-dev, 4 steps (README code sigmas)": ([64, 80, 96, 128], [1.0, 0.8956, 0.7363, 0.6007, 0]),
    "SDXL, 4 steps": ([64, 80, 96, 128], [1.0, 0.8, 0.6, 0.4, 0]),  # DDPM times t/1000 (yresearch/swd-sdxl)
}


def test_every_published_preset_is_shipped():
    assert set(core.PRESETS) == set(PUBLISHED)
    for name, (scales, sigmas) in PUBLISHED.items():
        assert list(core.PRESETS[name].scales) == scales
        assert list(core.PRESETS[name].sigmas) == sigmas


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_sizes_at_1024_are_the_published_ones(name):
    scales = PUBLISHED[name][0]
    assert core.latent_sizes(core.PRESETS[name].scales, 128, 128) == [(s, s) for s in scales]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("height,width", [(96, 128), (128, 72), (152, 88)])  # 768x1024, 1024x576, 1216x704 px
def test_preset_sizes_non_square(name, height, width):
    scales = PUBLISHED[name][0]
    sizes = core.latent_sizes(core.PRESETS[name].scales, height, width)
    assert sizes[-1] == (height, width)
    for s, (h, w) in zip(scales[:-1], sizes[:-1]):
        assert h % 2 == 0 and w % 2 == 0
        assert abs(h - height * s / scales[-1]) <= 1 and abs(w - width * s / scales[-1]) <= 1
    hs, ws = [h for h, _ in sizes], [w for _, w in sizes]
    assert hs == sorted(hs) and ws == sorted(ws)


def test_768x1024_sizes_exact():
    sizes = core.latent_sizes(core.PRESETS["SD3.5 Large, 6 steps"].scales, 96, 128)
    assert sizes == [(24, 32), (36, 48), (48, 64), (60, 80), (72, 96), (96, 128)]


def test_target_too_small_is_an_error():
    with pytest.raises(SwDError, match="too small for this schedule"):
        core.latent_sizes(core.PRESETS["SD3.5 Large, 6 steps"].scales, 2, 2)


@pytest.mark.parametrize("scales,sigmas,message", [
    ("32, 64", "1, 0.5, 0.2, 0", "2 scales need 3 sigmas"),
    ("32, 64, 96", "1, 0.5", "3 scales need 4 sigmas"),
    ("32, 64", "1, 0.7, 0.8", "the last sigma must be 0"),
    ("32, 64", "1, 1, 0", "sigmas must decrease strictly"),
    ("32, 64", "1.5, 0.5, 0", r"outside \(0, 1\]"),
    ("32, 64", "1, -0.5, 0", r"outside \(0, 1\]"),
    ("32, 64", ", ,", "sigmas has no numbers"),
    ("64, 32", "1, 0.5, 0", "scales must increase"),
    ("32, 32", "1, 0.5, 0", "scales must increase"),
    ("32, abc", "1, 0.5, 0", "'abc' is not a number"),
    ("32, 64", "1, x, 0", "'x' is not a number"),
    ("", "1, 0.5, 0", "scales is empty"),
    ("32, 64", "  ", "sigmas is empty"),
    ("32.5, 64", "1, 0.5, 0", "not a whole number"),
    ("32, 100000", "1, 0.5, 0", "outside 1..1024"),
    ("0, 64", "1, 0.5, 0", "outside 1..1024"),
    ("32, 64", "1, nan, 0", "'nan' is not a number"),
    (", ".join(["1"] * 65), "1", "at most 64"),
])
def test_custom_schedule_errors(scales, sigmas, message):
    with pytest.raises(SwDError, match=message):
        core.parse_schedule(scales, sigmas)


def test_trailing_zero_is_optional_as_in_both_readmes():
    first = core.parse_schedule("32, 64, 96, 128", "1.0000, 0.9454, 0.7904, 0.6022")
    newer = core.parse_schedule("[32, 64, 96, 128]", "[1.0000, 0.9454, 0.7904, 0.6022, 0]")
    assert first.sigmas == newer.sigmas == (1.0, 0.9454, 0.7904, 0.6022, 0.0)
    assert first.scales == core.PRESETS["SD3.5 Medium, 4 steps (first README)"].scales


def test_unknown_preset():
    with pytest.raises(SwDError, match="unknown preset"):
        core.get_schedule("SD9", "", "")


def test_truncate_for_denoise():
    six = core.PRESETS["SD3.5 Large, 6 steps"]
    assert core.truncate_for_denoise(six, 1.0) is six
    tail = core.truncate_for_denoise(six, 0.8)
    assert tail.scales == (80, 96, 128) and tail.sigmas == (0.7904, 0.7371, 0.6022, 0.0)
    with pytest.raises(SwDError, match="below every step"):
        core.truncate_for_denoise(six, 0.5)


def test_scales_for_sigmas():
    six = core.PRESETS["SD3.5 Large, 6 steps"]
    assert core.scales_for_sigmas(six, list(six.sigmas)) == six.scales
    assert core.scales_for_sigmas(six, [0.7904, 0.7371, 0.6022, 0.0]) == (80, 96, 128)
    assert core.scales_for_sigmas(six, [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0]) == six.scales  # same step count
    with pytest.raises(SwDError, match="do not fit the schedule"):
        core.scales_for_sigmas(six, [1.0, 0.5, 0.0])


# --- property tests -------------------------------------------------------------------------

scales_st = st.lists(st.integers(1, 1024), min_size=1, max_size=12, unique=True).map(sorted)


@st.composite
def schedules(draw):
    scales = draw(scales_st)
    inner = draw(st.lists(st.floats(0.001, 0.999, allow_nan=False), min_size=len(scales) - 1,
                          max_size=len(scales) - 1, unique=True))
    sigmas = [1.0, *sorted(inner, reverse=True), 0.0]
    return scales, sigmas


@given(schedules(), st.sampled_from([", ", ",", " ", " , "]), st.booleans(), st.booleans())
@settings(max_examples=200, deadline=None)
def test_parse_round_trip(schedule, sep, brackets, drop_zero):
    scales, sigmas = schedule
    shown = sigmas[:-1] if drop_zero else sigmas
    wrap = (lambda s: f"[{s}]") if brackets else (lambda s: s)
    parsed = core.parse_schedule(wrap(sep.join(map(str, scales))), wrap(sep.join(repr(s) for s in shown)))
    assert list(parsed.scales) == scales and list(parsed.sigmas) == sigmas


@given(st.text(max_size=60), st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_parser_never_raises_anything_but_swd_error(scales, sigmas):
    try:
        core.parse_schedule(scales, sigmas)
    except SwDError as e:
        assert str(e)


@given(schedules(), st.integers(2, 400), st.integers(2, 400))
@settings(max_examples=200, deadline=None)
def test_sizes_keep_ratio_or_fail_clearly(schedule, height, width):
    scales, _ = schedule
    try:
        sizes = core.latent_sizes(scales, height, width)
    except SwDError as e:
        assert "too small" in str(e)
        return
    assert len(sizes) == len(scales) and sizes[-1] == (height, width)
    for s, (h, w) in zip(scales[:-1], sizes[:-1]):
        assert h >= 2 and w >= 2 and h % 2 == 0 and w % 2 == 0
        assert math.isclose(h, height * s / scales[-1], abs_tol=1.0001)
