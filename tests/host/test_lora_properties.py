"""Property tests for the text the LoRA loader reads: adapter_config.json and lora_name.

Whatever the input, the answer is a usable result or the pack's SwDError, never another
exception, and a resolved LoRA path always lies inside ComfyUI's loras folders.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.paths import MODELS, SD3_LORA_DIR

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PEFT_FIELDS = ["r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "peft_type", "use_dora",
               "target_modules", "init_lora_weights", "loftq_config", "eva_config", "corda_config",
               "layers_pattern", "layers_to_transform", "megatron_config", "megatron_core", "lora_bias",
               "task_type", "use_bdlora", "arrow_config", "velora_config", "target_parameters"]
MODULES = ["transformer_blocks.0.attn.to_q", "transformer_blocks.1.ff.net.2", "proj_out"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(PEFT_FIELDS + MODULES), st.text(max_size=10)),
                                            inner, max_size=4)),
    max_leaves=12,
)
patterns = st.dictionaries(st.one_of(st.sampled_from(MODULES), st.text(max_size=8)), json_scalars, max_size=3)
# Mostly objects with PEFT's field names, so that the checks past "is it an object" are reached.
configs = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(PEFT_FIELDS), json_values, max_size=6),
    st.fixed_dictionaries({"r": st.integers(-2, 70000), "lora_alpha": st.one_of(st.integers(), st.floats())},
                          optional={"use_rslora": json_scalars, "rank_pattern": patterns, "alpha_pattern": patterns}),
)


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="swd-props-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def check_config(host, path):
    from peft import LoraConfig

    lora = host.swd_core.lora
    try:
        config = lora.read_adapter_config(path)
    except host.swd_core.SwDError as e:
        assert str(e)
        return None
    assert isinstance(config, LoraConfig)
    for name in MODULES:  # a config that passes is safe to use
        r, scale = lora.peft_scale(config, name)
        assert isinstance(r, int) and 1 <= r <= lora.MAX_RANK and math.isfinite(scale)
    return config


@PROPERTY
@given(value=configs)
def test_adapter_config_json_gives_a_config_or_swd_error(host, scratch, value):
    path = scratch / "adapter_config.json"
    path.write_text(json.dumps(value, allow_nan=True))  # NaN/Infinity: Python's json reads them back
    check_config(host, path)


@PROPERTY
@given(data=st.binary(max_size=200))
@example(data=b"[" * 100_000)  # nesting deeper than the recursion limit
@example(data=b"\xff\xfe{}")
@example(data=b"\xef\xbb\xbf{\"r\": 4}")  # a UTF-8 BOM
@example(data=b'{"r": 4, "lora_alpha": 1' + b"0" * 500 + b"}")  # an int too large for a float
@example(data=b'{"r": 4, "lora_alpha": ' + b"1" * 5000 + b"}")  # more digits than Python converts
@example(data=b'{"r": 4, "rank_pattern": {"(": 2}}')
@example(data=b'{"r": 4, "alpha_pattern": {"to_q": NaN}}')
@example(data=b" " * (1 << 20) + b"{}")  # larger than any adapter config
def test_adapter_config_bytes_give_a_config_or_swd_error(host, scratch, data):
    path = scratch / "adapter_config.json"
    path.write_bytes(data)
    check_config(host, path)


def test_a_real_config_passes_and_keeps_its_scale(host):
    config = check_config(host, MODELS / "loras" / SD3_LORA_DIR / "adapter_config.json")
    assert (config.r, config.lora_alpha) == (4, 8)
    assert host.swd_core.lora.peft_scale(config, MODULES[0]) == (4, 2.0)


# --------------------------------------------------------------------------- lora_name

@pytest.fixture(scope="module")
def loras(host, scratch):
    """An extra loras folder with good files, a .pt, and links out; files outside it to aim at."""
    root = scratch / "names"
    folder, outside = root / "loras", root / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    tensors = {"a": torch.zeros(1)}
    for p in (folder / "ok.safetensors", folder / "sub" / "adapter_model.safetensors", folder / "ok.sft",
              outside / "x.safetensors", root / "x.safetensors"):
        safetensors.torch.save_file(tensors, p)
    (folder / "payload.pt").write_bytes(b"not loaded")
    (folder / "link-out.safetensors").symlink_to(outside / "x.safetensors")
    (folder / "linkdir").symlink_to(outside, target_is_directory=True)
    (folder / "dangling.safetensors").symlink_to(root / "gone.safetensors")
    with host.model_folder("loras", folder):
        yield folder


SEGMENTS = ["..", ".", "", "sub", "ok.safetensors", "ok.sft", "adapter_model.safetensors", "link-out.safetensors",
            "linkdir", "x.safetensors", "payload.pt", "dangling.safetensors", "swd-standin-lora", "loras",
            "outside", "~", "\x00", "OK.SAFETENSORS", " ok.safetensors"]
names = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=4)), min_size=1, max_size=5).flatmap(
        lambda parts: st.sampled_from(["/", "\\", "//"]).map(lambda sep: sep.join(parts))),
    st.sampled_from(SEGMENTS).map(lambda s: "/" + s),
)


def roots(host):
    return [Path(p).resolve() for p in host.folder_paths.get_folder_paths("loras")]


@PROPERTY
@given(name=names)
@example(name="ok.safetensors")
@example(name="sub/adapter_model.safetensors")
@example(name="swd-standin-lora/adapter_model.safetensors")
@example(name="../x.safetensors")
@example(name="sub/../../x.safetensors")
@example(name="link-out.safetensors")
@example(name="linkdir/x.safetensors")
@example(name="/etc/passwd.safetensors")
@example(name="payload.pt")
def test_lora_name_resolves_inside_the_loras_folders_or_is_refused(host, loras, name):
    nodes_lora = host.pack.nodes.lora
    node = host.node("SwDLoraLoader")
    try:
        path = nodes_lora.resolve_lora_path(name)
    except host.swd_core.SwDError as e:
        assert str(e)
        verdict = node.validate_inputs(name)
        assert isinstance(verdict, str) and verdict.startswith("SwD LoRA Loader: "), verdict
        return
    assert isinstance(path, Path) and path.is_file() and path == path.resolve()
    assert any(path.is_relative_to(r) for r in roots(host)), path
    assert path.suffix.lower() in (".safetensors", ".sft")
    assert not os.path.isabs(name) and ".." not in Path(name).parts
    assert node.validate_inputs(name) is True


def test_lora_names_that_resolve_and_that_do_not(host, loras):
    """The property above is not vacuous: these are the files it can and cannot reach."""
    resolve, SwDError = host.pack.nodes.lora.resolve_lora_path, host.swd_core.SwDError
    assert resolve("ok.safetensors") == (loras / "ok.safetensors").resolve()
    assert resolve("sub/adapter_model.safetensors") == (loras / "sub" / "adapter_model.safetensors").resolve()
    assert resolve("./ok.sft") == (loras / "ok.sft").resolve()
    for name, cause in [("../x.safetensors", "not a name inside"), (str(loras / "ok.safetensors"), "not a name inside"),
                        ("link-out.safetensors", "outside the loras folders"),
                        ("linkdir/x.safetensors", "outside the loras folders"),
                        ("dangling.safetensors", "not found"), ("payload.pt", "not a .safetensors file")]:
        with pytest.raises(SwDError, match=cause):
            resolve(name)
