"""The SwD LoRA baked into a checkpoint with the stock save nodes, reloaded with the stock loaders.

Users run Load Checkpoint -> SwD LoRA Loader -> Save Checkpoint (``CheckpointSave``, model +
CLIP + VAE) or ``ModelSave`` (diffusion model only), move the file from ComfyUI's output folder
into ``models/checkpoints`` / ``models/diffusion_models`` and load it without the LoRA. The
merged file must give the latent of the patched model through SwD Sampler (fp32 stand-ins).
"""
import pathlib
import shutil
import uuid

import pytest
import safetensors.torch

CKPT = "swd-standin-sd35.safetensors"
CLIP_L = "swd-standin-clip_l.safetensors"
LORA = "swd-standin-lora/adapter_model.safetensors"
TOLERANCE = 1e-4


def sampling(model, clip, tag):
    """Text encode + SwD Sampler (6-step Large schedule) + SaveLatent, on ``model``/``clip`` node outputs."""
    return {
        f"pos_{tag}": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": clip}},
        f"sched_{tag}": {"class_type": "SwDSchedule", "inputs": {"preset": "SD3.5 Large, 6 steps", "scales": "",
                                                                 "sigmas": ""}},
        f"latent_{tag}": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 256, "height": 256,
                                                                          "batch_size": 1}},
        f"sampler_{tag}": {"class_type": "SwDSampler", "inputs": {
            "model": model, "positive": [f"pos_{tag}", 0], "negative": [f"pos_{tag}", 0],
            "latent_image": [f"latent_{tag}", 0], "schedule": [f"sched_{tag}", 0], "seed": 7, "cfg": 1.0,
            "upscale_method": "bicubic"}},
        f"save_{tag}": {"class_type": "SaveLatent", "inputs": {"samples": [f"sampler_{tag}", 0],
                                                               "filename_prefix": f"swd_merge_test/{tag}"}},
    }


def saved_latent(host, executor, node):
    out = executor.history_result["outputs"][node]["latents"][0]
    path = f"{host.folder_paths.get_output_directory()}/{out['subfolder']}/{out['filename']}"
    return safetensors.torch.load_file(path)["latent_tensor"]


def written(host, prefix):
    """The one file a save node wrote under ``prefix`` in ComfyUI's output folder."""
    out = host.folder_paths.get_output_directory()
    (path,) = list(pathlib.Path(out).glob(f"{prefix}_*.safetensors"))
    return path


def test_merged_checkpoint_and_diffusion_model_give_the_patched_latent(host, tmp_path):
    run = uuid.uuid4().hex[:8]
    merge = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP_L, "type": "sd3"}},
        "lora": {"class_type": "SwDLoraLoader", "inputs": {"model": ["ckpt", 0], "lora_name": LORA,
                                                           "strength_model": 1.0}},
        "save_ckpt": {"class_type": "CheckpointSave", "inputs": {
            "model": ["lora", 0], "clip": ["clip", 0], "vae": ["ckpt", 2],
            "filename_prefix": f"checkpoints/swd-merged-{run}"}},
        "save_unet": {"class_type": "ModelSave", "inputs": {"model": ["lora", 0],
                                                            "filename_prefix": f"diffusion_models/swd-merged-{run}"}},
        **sampling(["lora", 0], ["clip", 0], "patched"),
        **sampling(["ckpt", 0], ["clip", 0], "base"),
    }
    executor, messages = host.run_prompt(merge, "merge")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    patched = saved_latent(host, executor, "save_patched")
    base = saved_latent(host, executor, "save_base")
    assert (patched - base).abs().max().item() > 1e-2  # the LoRA changes the result

    # as a user does: move the files from the output folder into the model folders
    for folder in ("checkpoints", "diffusion_models"):
        (tmp_path / folder).mkdir()
        shutil.move(written(host, f"{folder}/swd-merged-{run}"), tmp_path / folder / f"merged-{run}.safetensors")
    with host.model_folder("checkpoints", tmp_path / "checkpoints"), \
            host.model_folder("diffusion_models", tmp_path / "diffusion_models"):
        reload = {
            "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": f"merged-{run}.safetensors"}},
            "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": f"merged-{run}.safetensors",
                                                            "weight_dtype": "default"}},
            **sampling(["ckpt", 0], ["ckpt", 1], "merged_ckpt"),  # the CLIP saved in the checkpoint
            **sampling(["unet", 0], ["ckpt", 1], "merged_unet"),
        }
        executor, messages = host.run_prompt(reload, "reload")
        assert executor.success, [m for m in messages if m[0] == "execution_error"]
    for node in ("save_merged_ckpt", "save_merged_unet"):
        merged = saved_latent(host, executor, node)
        assert merged.shape == patched.shape
        assert (merged - patched).abs().max().item() <= TOLERANCE, node


def sdxl_sampling(model, tag):
    graph = sampling(model, ["base", 1], tag)  # the checkpoint's CLIP-L + CLIP-G
    graph[f"sched_{tag}"]["inputs"]["preset"] = "SDXL, 4 steps"
    graph[f"latent_{tag}"]["class_type"] = "EmptyLatentImage"
    return graph


def flux_sampling(model, tag):
    graph = sampling(model, ["clip", 0], tag)
    graph[f"sched_{tag}"]["inputs"]["preset"] = "FLUX.1-dev, 4 steps"
    graph[f"guidance_{tag}"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": [f"pos_{tag}", 0],
                                                                         "guidance": 4.5}}
    graph[f"sampler_{tag}"]["inputs"]["positive"] = [f"guidance_{tag}", 0]
    return graph


#: family -> (the base model's loader node, nodes both prompts share, the LoRA, the sampling graph)
FAMILY_MERGES = {
    "sdxl": ({"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "swd-standin-sdxl.safetensors"}},
             {}, "swd-standin-sdxl-lora/adapter_model.safetensors", sdxl_sampling),
    "flux": ({"class_type": "UNETLoader", "inputs": {"unet_name": "swd-standin-flux1-dev.safetensors",
                                                     "weight_dtype": "default"}},
             {"clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP_L, "type": "stable_diffusion"}}},
             "swd-standin-flux-lora/adapter_model.safetensors", flux_sampling),
}


@pytest.mark.parametrize("family", sorted(FAMILY_MERGES))
def test_merged_diffusion_model_gives_the_patched_latent(host, tmp_path, family):
    """SDXL and FLUX.1-dev: the SwD LoRA merged by ModelSave (on FLUX into the fused qkv/linear1 weights),
    reloaded with UNETLoader (ComfyUI detects the model again), gives the patched model's latent."""
    base, shared, lora, family_sampling = FAMILY_MERGES[family]
    run = uuid.uuid4().hex[:8]
    merge = {
        **shared,
        "base": base,
        "lora": {"class_type": "SwDLoraLoader", "inputs": {"model": ["base", 0], "lora_name": lora,
                                                           "strength_model": 1.0}},
        "save_unet": {"class_type": "ModelSave", "inputs": {
            "model": ["lora", 0], "filename_prefix": f"diffusion_models/swd-{family}-{run}"}},
        **family_sampling(["lora", 0], "patched"),
        **family_sampling(["base", 0], "base"),
    }
    executor, messages = host.run_prompt(merge, f"merge-{family}")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    patched = saved_latent(host, executor, "save_patched")
    assert (patched - saved_latent(host, executor, "save_base")).abs().max().item() > 1e-2
    folder = tmp_path / "diffusion_models"
    folder.mkdir()
    merged_name = f"merged-{family}-{run}.safetensors"
    shutil.move(written(host, f"diffusion_models/swd-{family}-{run}"), folder / merged_name)
    with host.model_folder("diffusion_models", folder):
        reload = {
            **shared,
            "base": base,  # its CLIP (SDXL); the merged model replaces its MODEL
            "merged": {"class_type": "UNETLoader", "inputs": {"unet_name": merged_name, "weight_dtype": "default"}},
            **family_sampling(["merged", 0], "merged_unet"),
        }
        executor, messages = host.run_prompt(reload, f"reload-{family}")
        assert executor.success, [m for m in messages if m[0] == "execution_error"]
    merged = saved_latent(host, executor, "save_merged_unet")
    assert merged.shape == patched.shape and (merged - patched).abs().max().item() <= TOLERANCE
