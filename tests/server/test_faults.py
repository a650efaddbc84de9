"""Bad input through a real ComfyUI server: a clear error naming the node and the cause, and the
next good prompt on the same server still works and gives the same latent as before the faults.

One dedicated server serves the whole module. Its extra_model_paths.yaml is the stand-ins' plus
a test-owned ``loras`` folder (made before the server starts) holding every broken LoRA;
``outside/`` next to it holds files that must never be read. Pickle payloads create
``MARKER`` if anything ever unpickles them.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import shutil

import pytest
import safetensors.torch
import torch

from harness.comfy_server import ComfyServer
from harness.paths import EXTRA_PATHS, MODELS, SD3_LORA_DIR, comfyui_version_info
from harness.prompts import LORA, error_of, executed_nodes, saved_files, txt2img, with_inputs
from harness.standins import sd3 as standins

HOST_VERSION = comfyui_version_info()

GOOD_PRESET = "SD3.5 Large, 4 steps"
SUB = "swd-faults"  # the test's subfolder inside its own loras folder


class Payload:
    """Unpickling this creates ``path`` (and does nothing else)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def write_fault_files(root, marker):
    """The broken LoRAs under ``root/loras/swd-faults`` and the files outside under ``root/outside``."""
    loras, outside = root / "loras" / SUB, root / "outside"
    loras.mkdir(parents=True)
    outside.mkdir()
    real_dir = MODELS / "loras" / SD3_LORA_DIR
    real = safetensors.torch.load_file(real_dir / "adapter_model.safetensors")
    real_bytes = (real_dir / "adapter_model.safetensors").read_bytes()
    real_config = json.loads((real_dir / "adapter_config.json").read_text())

    def peft_folder(name, config=real_config, weights=real):
        (loras / name).mkdir()
        safetensors.torch.save_file(weights, loras / name / "adapter_model.safetensors")
        (loras / name / "adapter_config.json").write_text(config if isinstance(config, str) else json.dumps(config))

    safetensors.torch.save_file({}, loras / "empty.safetensors")
    (loras / "truncated.safetensors").write_bytes(real_bytes[: len(real_bytes) // 2])
    noise = torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    (loras / "corrupt.safetensors").write_bytes(noise.numpy().tobytes())
    (loras / "pickle.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    (loras / "torch-save.safetensors").write_bytes(buf.getvalue())
    (loras / "payload.pt").write_bytes(buf.getvalue())
    nan = dict(real)
    key = next(k for k in nan if k.endswith("lora_B.weight"))
    nan[key] = nan[key].clone()
    nan[key][0, 0] = float("nan")
    safetensors.torch.save_file(nan, loras / "nan.safetensors")
    a_key = next(k for k in real if k.endswith("lora_A.weight"))
    safetensors.torch.save_file({a_key: real[a_key]}, loras / "half-pair.safetensors")
    sd1 = "base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    safetensors.torch.save_file({f"{sd1}.lora_A.weight": torch.randn(4, 320),
                                 f"{sd1}.lora_B.weight": torch.zeros(320, 4)}, loras / "sd1-keys.safetensors")
    # A PEFT LoRA for a transformer with hidden size 64 (the stand-in's is 128): same key names.
    other = standins.build_transformer(seed=1, num_attention_heads=1, caption_projection_dim=64)
    standins.save_peft_lora(other, loras / "other-model", seed=1)
    peft_folder("bad-json", config="{\"r\": 4, \"lora_alpha\": ")
    peft_folder("wrong-rank", config={**real_config, "r": 8})
    peft_folder("dora", config={**real_config, "use_dora": True})
    peft_folder("bad-pattern", config={**real_config, "rank_pattern": {"to_q(": 4}})
    # Links out of the loras folder: a file, a folder, and a PEFT config next to real weights.
    safetensors.torch.save_file(real, outside / "real.safetensors")
    (outside / "peft").mkdir()
    shutil.copy(real_dir / "adapter_model.safetensors", outside / "peft" / "adapter_model.safetensors")
    shutil.copy(real_dir / "adapter_config.json", outside / "peft" / "adapter_config.json")
    (outside / "loha.json").write_text(json.dumps({"peft_type": "LOHA", "r": 4}))
    (loras / "escape.safetensors").symlink_to(outside / "real.safetensors")
    (loras / "escape-dir").symlink_to(outside / "peft", target_is_directory=True)
    (loras / "config-link").mkdir()
    shutil.copy(real_dir / "adapter_model.safetensors", loras / "config-link" / "adapter_model.safetensors")
    (loras / "config-link" / "adapter_config.json").symlink_to(outside / "loha.json")
    # `../x.safetensors` from the test's loras folder: a valid LoRA that must stay out of reach.
    safetensors.torch.save_file(real, root / "x.safetensors")


class Faults:
    def __init__(self, root):
        self.root = root
        self.marker = root / "UNPICKLED"
        write_fault_files(root, self.marker)
        paths = root / "extra_model_paths.yaml"
        paths.write_text(EXTRA_PATHS.read_text() + f"swd_faults:\n    base_path: {root}\n    loras: loras\n")
        self.server = ComfyServer(root / "server", extra_paths=paths)
        self.seed = 100
        self.first = None

    def good(self, seed=None):
        """A good prompt (stand-in LoRA, new seed so the sampler really runs): it must succeed."""
        if seed is None:
            self.seed += 1
            seed = self.seed
        rec = self.server.run(txt2img(seed=seed, preset=GOOD_PRESET, prefix=f"good_{seed}"), timeout=300)
        assert rec["status"] == "success", (error_of(rec), self.server.log()[-3000:])
        assert "sampler" in executed_nodes(rec)
        latent = self.latent(rec)
        assert latent.shape == (1, 16, 16, 16) and bool(torch.isfinite(latent).all())
        if self.first is None:
            self.first = (seed, latent)
        return latent

    def latent(self, rec, node="save"):
        f = saved_files(rec, node, "latents")[0]
        return safetensors.torch.load_file(self.server.output_dir / f["subfolder"] / f["filename"])["latent_tensor"]

    def rejected(self, prompt) -> dict:
        """POST /prompt must answer 400 with node_errors; returns them."""
        status, resp = self.server.queue(prompt)
        assert status == 400, resp
        return resp["node_errors"]

    def failed(self, prompt) -> dict:
        """The prompt must run and fail with an execution_error; returns its data."""
        rec = self.server.run(prompt, timeout=300)
        assert rec["status"] == "error", rec["status"]
        return error_of(rec)


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    f = Faults(tmp_path_factory.mktemp("faults"))
    f.good()  # the reference latent, before any fault
    yield f
    f.server.stop()


def assert_names_node_and_cause(err: dict, node_id: str, node_type: str, cause: str):
    assert err["node_id"] == node_id and err["node_type"] == node_type, err
    assert err["exception_type"].endswith("SwDError"), err["exception_type"]  # ours, not a crash inside
    assert cause in err["exception_message"], err["exception_message"]


def validation_text(node_errors: dict, node_id: str, class_type: str) -> str:
    assert node_id in node_errors and node_errors[node_id]["class_type"] == class_type, node_errors
    return " ".join(e["message"] + " " + e["details"] for e in node_errors[node_id]["errors"])


# --------------------------------------------------------------------------- validation time (400)

@pytest.mark.parametrize("scales,sigmas,cause,wrong", [
    ("32, 64, 128", "1.0, 0.9", "3 scales need 4 sigmas", "sigmas"),
    ("32, 64, x", "1.0, 0.9, 0.6", "'x' is not a number", "scales"),
    ("64, 32", "1.0, 0.5", "scales must increase", "scales"),
    ("", "1.0, 0.5", "scales is empty", "scales"),
    ("32, 64", "1.0, 1.5", "outside (0, 1]", "sigmas"),
    ("32, 64, 128", "1.0, 0.5, 0.7", "sigmas must decrease strictly", "sigmas"),
    ("32, 4096", "1.0, 0.5", "outside 1..1024", "scales"),
    ("32.5, 64", "1.0, 0.5", "not a whole number", "scales"),
    ("32, 64", "1.0, nan", "'nan' is not a number", "sigmas"),
])
def test_bad_custom_schedule_is_rejected_at_validation(faults, scales, sigmas, cause, wrong):
    """Once, under the input that is wrong (ComfyUI files it under ``sigmas``; the pack's POST /prompt
    middleware moves it)."""
    errors = faults.rejected(txt2img(preset="custom", scales=scales, sigmas=sigmas))
    text = validation_text(errors, "sched", "SwDSchedule")
    assert "SwD Schedule:" in text and cause in text, text
    assert [(e["extra_info"]["input_name"], e["details"].split(" - ")[0]) for e in errors["sched"]["errors"]] == \
        [(wrong, wrong)]
    faults.good()


@pytest.mark.parametrize("name,cause", [
    (f"{SUB}/missing/adapter_model.safetensors", "not found in the loras folders"),
    (f"{SUB}/payload.pt", "is not a .safetensors file; other formats are never loaded"),
    ("../x.safetensors", "is not a name inside the loras folders"),  # the file exists there
    ("swd-standin-lora/../../x.safetensors", "is not a name inside the loras folders"),
    ("ABSOLUTE", "is not a name inside the loras folders"),
    (f"{SUB}/escape.safetensors", "outside the loras folders"),  # symlink to a file outside
    (f"{SUB}/escape-dir/adapter_model.safetensors", "outside the loras folders"),  # symlinked folder
])
def test_lora_name_that_is_not_a_file_in_the_loras_folders_is_rejected_at_validation(faults, name, cause):
    if name == "ABSOLUTE":
        name = str(faults.root / "outside" / "real.safetensors")
    if name == "ABSOLUTE" or ".." in name:  # the file is there: only the name keeps it out of reach
        assert os.path.isfile(os.path.normpath(faults.root / "loras" / name))
    errors = faults.rejected(txt2img(lora=name))
    text = validation_text(errors, "lora", "SwDLoraLoader")
    assert "SwD LoRA Loader:" in text and cause in text, text
    faults.good()


def test_only_safetensors_are_listed(faults):
    ours = faults.server.object_info("SwDLoraLoader")["SwDLoraLoader"]["input"]["required"]["lora_name"][1]["options"]
    stock = faults.server.object_info("LoraLoaderModelOnly")["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0]
    assert f"{SUB}/payload.pt" in stock  # ComfyUI sees the file...
    assert f"{SUB}/payload.pt" not in ours  # ...our loader never offers it
    assert all(n.endswith((".safetensors", ".sft")) for n in ours)
    assert LORA in ours and f"{SUB}/empty.safetensors" in ours


def test_unknown_preset_is_rejected_at_validation(faults):
    """ComfyUI 0.33.0 checks the combo's value itself ("Value not in list"); 0.3.75 does not check a V3
    node's combo values, so SwD Schedule's own validation refuses it. Either way: rejected before anything
    runs, naming the value."""
    text = validation_text(faults.rejected(txt2img(preset="SD9, 1 step")), "sched", "SwDSchedule")
    if HOST_VERSION >= (0, 33):
        assert "Value not in list" in text and "preset: 'SD9, 1 step' not in" in text, text
    else:
        assert "unknown preset 'SD9, 1 step'" in text, text
    assert [e["extra_info"]["input_name"] for e in faults.rejected(txt2img(preset="SD9, 1 step"))["sched"]["errors"]] \
        == ["preset"]
    faults.good()


# --------------------------------------------------------------------------- run time (execution_error)

def linked_schedule(scales):
    """A custom schedule whose scales come from another node: known only at run time."""
    prompt = txt2img(preset="custom", sigmas="1.0, 0.8, 0.6, 0")
    prompt["text"] = {"class_type": "PrimitiveString", "inputs": {"value": scales}}
    prompt["sched"]["inputs"]["scales"] = ["text", 0]
    return prompt


def test_linked_custom_schedule_is_checked_when_it_runs(faults):
    rec = faults.server.run(with_inputs(linked_schedule("48, 96, 128"), sampler__seed=3), timeout=300)
    assert rec["status"] == "success", error_of(rec)
    err = faults.failed(linked_schedule("48, x, 128"))
    assert_names_node_and_cause(err, "sched", "SwDSchedule", "scales: 'x' is not a number")
    faults.good()


@pytest.mark.parametrize("lora,cause", [
    ("empty.safetensors", "holds no tensors"),
    ("truncated.safetensors", "not a readable safetensors file"),
    ("corrupt.safetensors", "not a readable safetensors file"),
    ("pickle.safetensors", "not a readable safetensors file"),
    ("torch-save.safetensors", "not a readable safetensors file"),
    ("nan.safetensors", "holds NaN or inf values"),
    ("half-pair.safetensors", "has no matching"),
    ("sd1-keys.safetensors", "is an SD1.5 LoRA but the model is SD3.5"),
    ("other-model/adapter_model.safetensors", "made for another model"),
    ("bad-json/adapter_model.safetensors", "adapter_config.json is not readable JSON"),
    ("wrong-rank/adapter_model.safetensors", "does not belong to these weights"),
    ("dora/adapter_model.safetensors", "DoRA adapters (use_dora) are not supported"),
    ("bad-pattern/adapter_model.safetensors", "is not a valid module pattern"),
    ("config-link/adapter_model.safetensors", "outside the loras folders"),
])
def test_bad_lora_fails_at_the_loader(faults, lora, cause):
    err = faults.failed(txt2img(lora=f"{SUB}/{lora}", seed=7))
    assert_names_node_and_cause(err, "lora", "SwDLoraLoader", cause)
    faults.good()


def test_non_finite_lora_strength(faults):
    err = faults.failed(txt2img(strength=math.nan))
    assert_names_node_and_cause(err, "lora", "SwDLoraLoader", "strength_model must be a finite number")
    faults.good()


def four_channel_latent(faults):
    g = torch.Generator().manual_seed(0)
    safetensors.torch.save_file({"latent_tensor": torch.randn(1, 4, 16, 16, generator=g),
                                 "latent_format_version_0": torch.tensor([])},
                                faults.server.input_dir / "four_channels.latent")
    return {"class_type": "LoadLatent", "inputs": {"latent": "four_channels.latent"}}


@pytest.mark.parametrize("case,cause", [
    ("too small", "too small for this schedule"),
    ("4 channels", "4 channels but the SD3.5 model expects 16"),
    ("denoise on an empty latent", "latent_image is empty"),
    ("denoise below every sigma", "below every step's sigma"),
    ("non-finite cfg", "cfg must be a finite number"),
])
def test_bad_sampler_input_fails_at_the_sampler(faults, case, cause):
    prompt = txt2img(seed=7)
    if case == "too small":
        prompt = with_inputs(prompt, latent__width=16, latent__height=16)
    elif case == "4 channels":
        prompt["latent"] = four_channel_latent(faults)
    elif case == "denoise on an empty latent":
        prompt = with_inputs(prompt, sampler__denoise=0.8)
    elif case == "denoise below every sigma":
        prompt = with_inputs(prompt, sampler__denoise=0.5)
    elif case == "non-finite cfg":
        prompt = with_inputs(prompt, sampler__cfg=math.nan)
    err = faults.failed(prompt)
    assert_names_node_and_cause(err, "sampler", "SwDSampler", cause)
    faults.good()


def test_unknown_upscale_method_is_refused_naming_the_sampler(faults):
    """A combo value the node does not offer (an API prompt can send one): ComfyUI 0.3.75 does not check a
    V3 node's combo values, so SwD Sampler refuses it when it runs; 0.33.0 checks them at validation
    (400, "Value not in list") before the pack sees the value. Either way the node and the value are named."""
    prompt = with_inputs(txt2img(seed=7), sampler__upscale_method="lanczos9")
    if HOST_VERSION >= (0, 33):
        text = validation_text(faults.rejected(prompt), "sampler", "SwDSampler")
        assert "Value not in list" in text and "upscale_method: 'lanczos9' not in" in text, text
    else:
        assert_names_node_and_cause(faults.failed(prompt), "sampler", "SwDSampler", "unknown upscale_method 'lanczos9'")
    faults.good()


# --------------------------------------------------------------------------- after all of it

def test_nothing_was_unpickled_and_the_payload_is_real(faults, tmp_path):
    assert not faults.marker.exists(), "a LoRA file was unpickled"
    check = tmp_path / "check"
    pickle.loads(pickle.dumps(Payload(check)))  # the payload does what it says when unpickled
    assert check.exists()


def test_same_latent_after_all_faults(faults):
    """Same seed as the first good prompt: bit-identical, so no fault left patches or state behind."""
    seed, latent = faults.first
    faults.good(seed=faults.seed + 1000)  # something else in between, so nothing comes from the cache
    assert torch.equal(faults.good(seed=seed), latent)
    assert faults.server.alive()
