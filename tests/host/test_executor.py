"""Our nodes in graphs run by ComfyUI's own executor (validation included), on the stand-in models."""
import pytest
import safetensors.torch

from harness.comfy_host import PromptInvalid


def graph(**overrides):
    """txt2img: stock loaders + SwD LoRA Loader + SwD Schedule + SwD Sampler + SaveLatent (API format)."""
    g = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": "swd-standin-sd35-transformer.safetensors",
                                                        "weight_dtype": "default"}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": "swd-standin-clip_l.safetensors", "type": "sd3"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat reading a newspaper", "clip": ["clip", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["clip", 0]}},
        "lora": {"class_type": "SwDLoraLoader", "inputs": {"model": ["unet", 0], "strength_model": 1.0,
                                                           "lora_name": "swd-standin-lora/adapter_model.safetensors"}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": "SD3.5 Large, 6 steps", "scales": "",
                                                          "sigmas": ""}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 384, "height": 256, "batch_size": 2}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["lora", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "schedule": ["sched", 0], "seed": 42, "cfg": 1.0, "upscale_method": "bicubic"}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": "swd_test"}},
    }
    for path, value in overrides.items():
        node, key = path.split(".")
        g[node]["inputs"][key] = value
    return g


def saved_latent(host, executor):
    out = executor.history_result["outputs"]["save"]["latents"][0]
    path = host.folder_paths.get_output_directory() + f"/{out['subfolder']}/{out['filename']}"
    return safetensors.torch.load_file(path)["latent_tensor"]


def test_swd_sampler_runs_in_the_executor(host):
    executor, messages = host.run_prompt(graph(), "txt2img")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    latent = saved_latent(host, executor)
    assert latent.shape == (2, 16, 32, 48)
    lora_text = executor.history_result["outputs"]["lora"]["text"][0]
    assert "patched 14 weights" in lora_text
    again, _ = host.run_prompt(graph(**{"save.filename_prefix": "swd_test_again"}), "txt2img-again")
    assert (saved_latent(host, again) == latent).all()  # same seed, same latent


def test_schedule_sigmas_feed_stock_nodes(host):
    prompt = {"sched": {"class_type": "SwDSchedule", "inputs": {"preset": "custom", "scales": "32, 64, 128",
                                                                "sigmas": "1.0, 0.9, 0.6"}},
              "show": {"class_type": "PreviewAny", "inputs": {"source": ["sched", 1]}}}
    executor, _ = host.run_prompt(prompt, "sigmas")
    assert executor.success
    text = executor.history_result["outputs"]["show"]["text"][0]
    # the whole schedule reaches the stock node, the final 0 included
    assert "1.0000, 0.9000, 0.6000, 0.0000" in text


@pytest.mark.parametrize("scales,sigmas,message", [
    ("32, 64, 128", "1.0, 0.9", "3 scales need 4 sigmas"),
    ("32, 64, x", "1.0, 0.9, 0.6", "'x' is not a number"),
    ("64, 32", "1.0, 0.5", "scales must increase"),
])
def test_invalid_custom_schedule_fails_validation_with_our_message(host, scales, sigmas, message):
    bad = graph(**{"sched.preset": "custom", "sched.scales": scales, "sched.sigmas": sigmas})
    with pytest.raises(PromptInvalid) as info:
        host.run_prompt(bad, "bad-schedule")
    errors = info.value.node_errors
    assert set(errors) == {"sched"} and errors["sched"]["class_type"] == "SwDSchedule"
    details = " ".join(e["details"] + e["message"] for e in errors["sched"]["errors"])
    assert "SwD Schedule:" in details and message in details
