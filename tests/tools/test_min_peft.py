"""The pack runs on the oldest PEFT it declares (requirements.txt / pyproject.toml): the same scales
as the PEFT installed here, whose own LoraModel is the reference.

The declared minimum is installed with pip (`--no-deps --target`, cached under .host/) and the
scale computation runs under it in a subprocess, so CI checks the declared floor, not only the newest.
"""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from peft import LoraConfig, get_peft_model

from harness.paths import HOST, PYLIB, ROOT

CONFIG = dict(r=4, lora_alpha=6, rank_pattern={"to_k": 2}, alpha_pattern={"net.2": 3, "1.attn.to_q": 5})


def declared_minimum() -> str:
    requirement = (ROOT / "requirements.txt").read_text()
    (version,) = re.findall(r"^peft>=([\d.]+)\s*$", requirement, re.M)
    assert f'"peft>={version}"' in (ROOT / "pyproject.toml").read_text()  # both files declare the same floor
    return version


@pytest.fixture(scope="module")
def min_peft() -> str:
    version = declared_minimum()
    target = HOST / f"peft-{version}"
    if not (target / "peft" / "__init__.py").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"peft=={version}"], check=True)
    return str(target)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([torch.nn.Module() for _ in range(2)])
        for block in self.transformer_blocks:
            block.attn = torch.nn.Module()
            block.attn.to_q, block.attn.to_k = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
            block.ff = torch.nn.Module()
            block.ff.net = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity(), torch.nn.Linear(8, 8)])


def test_scales_under_the_declared_minimum_peft_equal_peft_s_own(min_peft, tmp_path):
    model = get_peft_model(Tiny(), LoraConfig(target_modules=["to_q", "to_k", "net.2"], **CONFIG))
    model.save_pretrained(str(tmp_path))
    reference = {n.split("base_model.model.", 1)[1]: m.scaling["default"] for n, m in model.named_modules()
                 if isinstance(getattr(m, "scaling", None), dict) and "default" in m.scaling}
    names = sorted(reference)
    assert len(set(reference.values())) > 2  # the patterns give the modules different scales
    code = ("import json, sys, peft; from pathlib import Path; from swd_core import lora; "
            f"c = lora.read_adapter_config(Path({str(tmp_path / 'adapter_config.json')!r})); "
            f"scales = {{n: lora.peft_scale(c, n)[1] for n in {names!r}}}; "
            "print(json.dumps({'peft': peft.__version__, 'scales': scales}))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([min_peft, str(PYLIB)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["peft"] == declared_minimum()  # it really ran on the old PEFT
    assert result["scales"].keys() == reference.keys()
    for name, scale in result["scales"].items():
        assert scale == pytest.approx(reference[name], rel=1e-12), name
