"""The ControlNet workflow (``swd-sd3.5-large-controlnet``) in a real server on the stand-ins.

Stand-ins: the SD3 ControlNet stand-in (diffusers SD3 ControlNet layout) takes the place of
``sd3.5_large_controlnet_canny.safetensors`` (Stability's SD3.5 layout, another ComfyUI loader:
see ``harness.standins.sd3_controlnet``), with the stand-in checkpoint. The generic run (progress
per step, the PNG) is ``test_workflows.py``; here: the ControlNet path ran (a hint VAE-encoded at
every scale shows in the server's work: Canny and Apply ControlNet executed, the image differs
from the same graph without the ControlNet), and a ControlNet of another family is refused
naming SwD Sampler while the server goes on serving.
"""
from __future__ import annotations

import copy
import json

import numpy
import torch
from PIL import Image

from harness import paths, standin_workflow
from harness.prompts import error_of, executed_nodes
from harness.shipped_workflows import api

NAME = "swd-sd3.5-large-controlnet"
TEST_SIZE = 256


def prepared(server, seed=42):
    prompt = standin_workflow.use_standins(api(NAME), server.object_info())
    by_type = {n["class_type"]: i for i, n in prompt.items()}
    # the stand-in in the layout of Stability's file
    assert prompt[by_type["ControlNetLoader"]]["inputs"]["control_net_name"] == paths.SD35_CONTROLNET
    assert prompt[by_type["CheckpointLoaderSimple"]]["inputs"]["ckpt_name"] == paths.SD3_CHECKPOINT
    prompt[by_type["EmptySD3LatentImage"]]["inputs"].update(width=TEST_SIZE, height=TEST_SIZE)
    prompt[by_type["SwDSampler"]]["inputs"]["seed"] = seed
    # a control image with edges (ComfyUI's example.png may be absent from a test server's input)
    image = Image.new("RGB", (320, 240), (20, 20, 20))
    image.paste((230, 230, 230), (80, 60, 240, 180))
    image.save(server.input_dir / "swd_cn_test.png")
    prompt[by_type["LoadImage"]]["inputs"]["image"] = "swd_cn_test.png"
    return prompt, by_type


def pixels(server, record, save_id):
    (image,) = record["history"]["outputs"][save_id]["images"]
    return torch.from_numpy(numpy.array(Image.open(server.output_dir / image["subfolder"] / image["filename"])))


def check_success(server, record):
    errors = [m for m in record["messages"] if m["type"] == "execution_error"]
    assert record["status"] == "success", json.dumps(errors)[:3000] + server.log()[-3000:]


def test_controlnet_workflow_runs_and_the_controlnet_acts(server):
    prompt, by_type = prepared(server)
    record = server.run(prompt, timeout=600)
    check_success(server, record)
    # (the ControlNet loader may be cached from the generic run)
    assert {by_type[t] for t in ("Canny", "ControlNetApplyAdvanced")} <= executed_nodes(record)
    # the same graph without the ControlNet: another image
    plain = copy.deepcopy(prompt)
    sampler = plain[by_type["SwDSampler"]]["inputs"]
    apply = prompt[by_type["ControlNetApplyAdvanced"]]["inputs"]
    sampler["positive"], sampler["negative"] = apply["positive"], apply["negative"]
    for t in ("ControlNetLoader", "Canny", "ControlNetApplyAdvanced", "LoadImage"):
        del plain[by_type[t]]
    plain[by_type["SaveImage"]]["inputs"]["filename_prefix"] = "swd/cn-test-plain"
    other = server.run(plain, timeout=600)
    check_success(server, other)
    assert not torch.equal(pixels(server, record, by_type["SaveImage"]), pixels(server, other, by_type["SaveImage"]))


def test_another_family_is_refused_and_the_server_goes_on(server):
    prompt, by_type = prepared(server, seed=43)
    bad = copy.deepcopy(prompt)
    bad["flux"] = {"class_type": "UNETLoader", "inputs": {"unet_name": paths.FLUX_DIFFUSION_MODEL,
                                                          "weight_dtype": "default"}}
    bad[by_type["SwDSampler"]]["inputs"]["model"] = ["flux", 0]
    bad[by_type["SwDSchedule"]]["inputs"]["preset"] = "FLUX.1-dev, 4 steps"
    record = server.run(bad, timeout=600)
    assert record["status"] == "error"
    error = error_of(record)
    assert error["node_id"] == by_type["SwDSampler"] and error["node_type"] == "SwDSampler"
    assert error["exception_message"].startswith(
        "SwD Sampler: the positive conditioning has an SD3.5 ControlNet, but the model is FLUX"), error
    # the next prompt runs
    check_success(server, server.run(prompt, timeout=600))
