"""The "Use with..." workflows (issue #16) in a real server on the stand-ins, beyond the generic run.

* ``swd-sd3.5-large-merge-lora``: Load Checkpoint -> SwD LoRA Loader -> Save Checkpoint writes
  one checkpoint into the server's output folder: the diffusion model with the LoRA merged in
  (targeted weights changed, the others as loaded), the text encoder and the VAE. (That the
  reloaded file gives the patched model's latent is tests/host/test_merged_checkpoint.py.)
* ``swd-sd3.5-large-vs-base``: both images (SwD 6 steps, base 28 steps) at the test size, the
  base run's KSampler through all 28 steps.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from harness import standin_workflow
from harness.paths import MODELS, SD3_CHECKPOINT
from harness.shipped_workflows import api
from workflow_builders import flux, sd35, sdxl

TEST_SIZE = 256


def test_merge_workflow_writes_a_merged_checkpoint(server):
    prompt = standin_workflow.use_standins(api("swd-sd3.5-large-merge-lora"), server.object_info())
    record = server.run(prompt, timeout=600)
    errors = [m for m in record["messages"] if m["type"] == "execution_error"]
    assert record["status"] == "success", json.dumps(errors)[:3000] + server.log()[-3000:]
    (path,) = list(server.output_dir.glob(f"{sd35.MERGED_PREFIX}_*.safetensors"))
    merged = safetensors.torch.load_file(path)
    base = safetensors.torch.load_file(MODELS / "checkpoints" / SD3_CHECKPOINT)
    assert any(k.startswith("text_encoders.clip_l.") for k in merged), "the CLIP is saved with it"
    assert {k for k in base if k.startswith("first_stage_model.")} <= set(merged)
    mmdit = [k for k in base if k.startswith("model.diffusion_model.")]
    changed = [k for k in mmdit if not torch.equal(merged[k].float(), base[k].float())]
    # 14 LoRA targets in the stand-in (2 blocks: q, k, v, out of each stream, and the MLPs):
    # q, k, v are one fused qkv weight in ComfyUI's MMDiT
    assert changed and all(any(p in k for p in ("attn.qkv", "attn.proj", "mlp.fc")) for k in changed), changed
    assert all(merged[k].dtype == base[k].dtype for k in mmdit)


@pytest.mark.parametrize("name,base_steps", [("swd-sd3.5-large-vs-base", sd35.BASE_STEPS),
                                             ("swd-sdxl-4-steps-vs-base", sdxl.BASE_STEPS),
                                             ("swd-flux1-dev-4-steps-vs-base", flux.BASE_STEPS)])
def test_vs_base_workflow_renders_both(server, name, base_steps):
    prompt = standin_workflow.use_standins(api(name), server.object_info())
    for node in prompt.values():
        if node["class_type"] in ("EmptySD3LatentImage", "EmptyLatentImage"):
            node["inputs"]["width"] = node["inputs"]["height"] = TEST_SIZE
    record = server.run(prompt, timeout=600)
    errors = [m for m in record["messages"] if m["type"] == "execution_error"]
    assert record["status"] == "success", json.dumps(errors)[:3000] + server.log()[-3000:]
    base_id = next(i for i, n in prompt.items() if n["class_type"] == "KSampler")
    progress = [m["data"]["value"] for m in record["messages"]
                if m["type"] == "progress" and m["data"]["node"] == base_id]
    assert progress[-1] == base_steps
    saves = [i for i, n in prompt.items() if n["class_type"] == "SaveImage"]
    assert len(saves) == 2
    pixels = []
    for save_id in saves:
        (image,) = record["history"]["outputs"][save_id]["images"]
        png = Image.open(server.output_dir / image["subfolder"] / image["filename"])
        assert png.size == (TEST_SIZE, TEST_SIZE)
        pixels.append(torch.from_numpy(np.array(png)))
    assert not torch.equal(*pixels)  # two different renders, not one image twice
