"""swd_core.lora against PEFT itself: pattern matching and every default of adapter_config.json.

No ComfyUI: a small torch model with the SD3 transformer's module names stands in for the
transformer; PEFT's own `PeftModel.from_pretrained` is the reference for the scale of each module.
"""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.other import get_pattern_key

from swd_core import lora as swd_lora

NAMES = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.1.attn.to_q",
         "transformer_blocks.1.ff.net.2", "transformer_blocks.10.attn.to_out.0", "single.to_q"]


class Tiny(torch.nn.Module):
    """Linear layers named like the SD3 transformer's LoRA targets."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleDict()
        for name in NAMES:
            parent = self.layers
            *path, leaf = name.split(".")
            for part in path:
                if part not in parent:
                    parent[part] = torch.nn.ModuleDict()
                parent = parent[part]
            parent[leaf] = torch.nn.Linear(8, 8)

    def forward(self, x):
        return x


def peft_scalings(folder) -> dict[str, float]:
    """PEFT's own scale per LoRA module when it loads ``folder``."""
    model = PeftModel.from_pretrained(Tiny(), str(folder))
    return {name.split("layers.", 1)[1]: module.scaling["default"] for name, module in model.named_modules()
            if hasattr(module, "scaling") and "default" in getattr(module, "scaling", {})}


def save(tmp_path, drop=(), **config) -> tuple:
    torch.manual_seed(0)
    model = get_peft_model(Tiny(), LoraConfig(target_modules=["to_q", "to_k", "net.2", "to_out.0"], **config))
    model.save_pretrained(str(tmp_path))
    path = tmp_path / "adapter_config.json"
    raw = json.loads(path.read_text())
    for key in drop:
        raw.pop(key)
    path.write_text(json.dumps(raw))
    return path


def ours(config_path) -> dict[str, float]:
    config = swd_lora.read_adapter_config(config_path)
    return {name: swd_lora.peft_scale(config, name)[1] for name in NAMES}


@pytest.mark.parametrize("config,drop", [
    (dict(r=4, lora_alpha=16), ("lora_alpha",)),          # PEFT's default lora_alpha is 8, not r
    (dict(r=8, lora_alpha=4), ("r",)),                    # PEFT's default r is 8
    (dict(r=4, lora_alpha=8, use_rslora=False), ("use_rslora",)),
    (dict(r=4, lora_alpha=6, rank_pattern={"to_k": 2}, alpha_pattern={"net.2": 3}), ("alpha_pattern",)),
    (dict(r=4, lora_alpha=6), ("rank_pattern", "alpha_pattern")),
    (dict(r=4, lora_alpha=6, rank_pattern={"to_k": 2}, alpha_pattern={"net.2": 3}), ()),
    (dict(r=4, lora_alpha=8, use_rslora=True), ()),
])
def test_every_default_as_peft_fills_it(tmp_path, config, drop):
    path = save(tmp_path, drop=drop, **config)
    reference = peft_scalings(tmp_path)
    got = ours(path)
    assert reference.keys() == got.keys()
    for name in got:
        assert got[name] == pytest.approx(reference[name], rel=1e-12), name


def test_missing_lora_alpha_is_not_alpha_equals_r(tmp_path):
    """The defect this replaces: a config without lora_alpha got scale 1 (alpha = r), PEFT applies 8 / r."""
    path = save(tmp_path, drop=("lora_alpha",), r=4, lora_alpha=16)
    assert set(ours(path).values()) == {2.0}


keys = st.sampled_from(["to_q", "to_k", "attn.to_q", "0.attn.to_q", "ff.net.2", "net.2", "to_.*", r"blocks\.1\..*",
                        "transformer_blocks.1.attn.to_q", "q", "attn", ".*"])


@settings(max_examples=300, deadline=None)
@given(pattern_keys=st.lists(keys, unique=True, max_size=4), name=st.sampled_from(NAMES))
def test_pattern_rule_is_peft_s(pattern_keys, name):
    """`pattern_value` picks the key PEFT's (private) `get_pattern_key` picks, for any key order."""
    pattern = {k: i + 1 for i, k in enumerate(pattern_keys)}
    expected_key = get_pattern_key(pattern.keys(), name)
    assert swd_lora.pattern_value(pattern, name, 0) == pattern.get(expected_key, 0)
