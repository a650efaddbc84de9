"""SwD LoRA Loader on fp8 model files: ComfyUI's fp8 "scaled" checkpoint format and UNETLoader's
``weight_dtype`` fp8_e4m3fn (SD3.5), an SDXL checkpoint with float8_e4m3fn UNet weights and UNETLoader
fp8_e4m3fn on the SDXL UNet (SDXL), a FLUX.1-dev diffusion model stored in float8_e4m3fn and
UNETLoader fp8_e4m3fn on the bf16 one (FLUX), against the full-precision run of the same graph.

fp8 is lossy, so nothing here can match exactly: the test measures the difference of the SwD
latent (printed; the README states the figures) and asserts only that it is finite and smaller
than the LoRA's own effect on the latent (full precision with vs. without the LoRA): an fp8 run
that lost or mangled the LoRA (e.g. a patch dropped, applied unscaled, or applied twice) would
land at least that far away.
"""
import safetensors.torch
import torch

from harness.paths import FLUX_DIFFUSION_MODEL, FLUX_LORA, MODELS, SD3_CHECKPOINT, SDXL_DIFFUSION_MODEL, SDXL_LORA
from harness.standins import sd3 as standins
from harness.standins import sdxl

UNET = "swd-standin-sd35-transformer.safetensors"
CLIP_L = "swd-standin-clip_l.safetensors"
LORA = "swd-standin-lora/adapter_model.safetensors"


def graph(loader: dict, lora: bool = True) -> dict:
    g = {
        "load": loader,
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP_L, "type": "sd3"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["clip", 0]}},
        "lora": {"class_type": "SwDLoraLoader", "inputs": {"model": ["load", 0], "lora_name": LORA,
                                                           "strength_model": 1.0}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": "SD3.5 Large, 6 steps", "scales": "",
                                                          "sigmas": ""}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "sampler": {"class_type": "SwDSampler", "inputs": {
            "model": ["lora", 0] if lora else ["load", 0], "positive": ["pos", 0], "negative": ["pos", 0],
            "latent_image": ["latent", 0], "schedule": ["sched", 0], "seed": 7, "cfg": 1.0,
            "upscale_method": "bicubic"}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": "swd_fp8_test"}},
    }
    if not lora:
        del g["lora"]
    return g


def latent_of(host, prompt, name):
    executor, messages = host.run_prompt(prompt, name)
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    out = executor.history_result["outputs"]["save"]["latents"][0]
    path = f"{host.folder_paths.get_output_directory()}/{out['subfolder']}/{out['filename']}"
    return safetensors.torch.load_file(path)["latent_tensor"]


def unet(weight_dtype):
    return {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": weight_dtype}}


def test_swd_lora_on_fp8_files_stays_close_to_full_precision(host, tmp_path):
    full = latent_of(host, graph(unet("default")), "fp32")
    no_lora = latent_of(host, graph(unet("default"), lora=False), "fp32-no-lora")
    lora_effect = (full - no_lora).abs().max().item()
    assert lora_effect > 1e-2

    ckpt = safetensors.torch.load_file(MODELS / "checkpoints" / SD3_CHECKPOINT)
    scaled = standins.scaled_fp8_checkpoint(ckpt)
    assert sum(v.dtype == torch.float8_e4m3fn for v in scaled.values()) > 10
    (tmp_path / "checkpoints").mkdir()
    safetensors.torch.save_file(scaled, tmp_path / "checkpoints" / "standin_fp8_scaled.safetensors")
    with host.model_folder("checkpoints", tmp_path / "checkpoints"):
        ckpt_loader = {"class_type": "CheckpointLoaderSimple",
                       "inputs": {"ckpt_name": "standin_fp8_scaled.safetensors"}}
        results = {
            "fp8 scaled checkpoint": latent_of(host, graph(ckpt_loader), "fp8-scaled"),
            "UNETLoader fp8_e4m3fn": latent_of(host, graph(unet("fp8_e4m3fn")), "fp8-e4m3fn"),
        }
        # the scaled checkpoint really runs on its fp8 bytes times their scale
        model = host.node("CheckpointLoaderSimple")().load_checkpoint("standin_fp8_scaled.safetensors")[0]
        check_computes_with_scaled_fp8(model.model.diffusion_model.joint_blocks[0].x_block.attn.qkv,
                                       scaled, "model.diffusion_model.joint_blocks.0.x_block.attn.qkv")
    check_against_full_precision(results, full, no_lora)


def check_computes_with_scaled_fp8(linear, scaled: dict, key: str) -> None:
    """``linear`` (a layer of the loaded scaled-fp8 checkpoint ``scaled``) computes with the file's fp8
    bytes times their ``scale_weight``: its output matches ``F.linear`` on that dequantised weight, and
    not on the bytes unscaled. Checked on the layer's output, not on how the host holds the weight
    (0.3.75: an fp8 ``weight`` + ``scale_weight``; 0.33: comfy-kitchen's ``QuantizedTensor``)."""
    stored, scale = scaled[f"{key}.weight"], scaled[f"{key}.scale_weight"]
    assert stored.dtype == torch.float8_e4m3fn and scale.numel() == 1 and scale.item() != 1.0
    bias = scaled[f"{key}.bias"].float()
    x = torch.randn(2, stored.shape[1], generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        y = linear(x).float()
    expected = torch.nn.functional.linear(x, stored.float() * scale.float(), bias)
    unscaled = torch.nn.functional.linear(x, stored.float(), bias)
    err = (y - expected).abs().max().item()
    print(f"\nscaled fp8 layer vs its dequantised file weight: max {err:.2e} (output scale "
          f"{expected.abs().max().item():.3f})")
    assert err <= 1e-2 * expected.abs().max().item()
    assert (y - unscaled).abs().max().item() > 10 * err


def check_against_full_precision(results: dict, full, no_lora) -> None:
    """Print, then check, each fp8 run's SwD latent in ``results`` against the full-precision run ``full``:
    finite, nearer than the LoRA's whole effect (``full`` vs ``no_lora``) at the worst pixel, and on
    average nearer ``full`` than ``no_lora`` (a dropped, doubled or unscaled LoRA lands at least that far)."""
    lora_effect = (full - no_lora).abs()
    print(f"\nSwD latent, LoRA effect (full precision with vs without LoRA): max {lora_effect.max().item():.4f}, "
          f"mean {lora_effect.mean().item():.5f}; latent std {full.std().item():.4f}")
    for name, latent in results.items():
        diff = (latent - full).abs()
        print(f"{name} vs full precision: max {diff.max().item():.4f}, mean {diff.mean().item():.5f}")
        assert torch.isfinite(latent).all(), name
        assert diff.max().item() < lora_effect.max().item(), name
        # and the LoRA is in: on average nearer the full-precision SwD latent than the run without it
        assert diff.mean().item() < (latent - no_lora).abs().mean().item(), name


# --------------------------------------------------------------------------- SDXL

def swd_latent(host, model, positive, lora: str | None, preset: str, latent_shape) -> torch.Tensor:
    """SwD LoRA Loader (``lora`` at strength 1; ``None``: none) + SwD Sampler (``preset``, seed 7, cfg 1) on
    a zero latent of ``latent_shape``, in inference mode as ComfyUI's executor runs nodes (its fp8 LoRA
    patching needs it)."""
    with torch.inference_mode():
        if lora:
            model = host.node("SwDLoraLoader").execute(model, lora, 1.0).args[0]
        latent = {"samples": torch.zeros(latent_shape)}
        schedule = host.swd_core.PRESETS[preset]
        out = host.node("SwDSampler").execute(model, positive, positive, latent, schedule, 7, 1.0, "bicubic")
        return out.args[0]["samples"]


def sdxl_latent(host, model, positive, lora=True):
    """The SDXL stand-in LoRA (or none) + SwD Sampler, SDXL 4 steps, 256x192."""
    return swd_latent(host, model, positive, SDXL_LORA if lora else None, "SDXL, 4 steps", (1, 4, 24, 32))


def test_sdxl_swd_lora_on_fp8_files_stays_close_to_full_precision(host, tmp_path):
    """SDXL in fp8 two ways: a checkpoint whose UNet weights are stored in float8_e4m3fn (community "fp8"
    SDXL checkpoints: ``sdxl.fp8_checkpoint``) and UNETLoader fp8_e4m3fn on the split UNet; the same
    conditioning (the fp8 checkpoint's CLIP, which is the full-precision one) for every run."""
    import comfy.model_management

    ckpt = safetensors.torch.load_file(MODELS / sdxl.CHECKPOINT_FILE)
    fp8 = sdxl.fp8_checkpoint(ckpt)
    assert sum(v.dtype == torch.float8_e4m3fn for v in fp8.values()) > 100
    (tmp_path / "checkpoints").mkdir()
    safetensors.torch.save_file(fp8, tmp_path / "checkpoints" / "standin_sdxl_fp8.safetensors")
    key = "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_q.weight"
    stored = fp8[key]
    del ckpt, fp8
    with host.model_folder("checkpoints", tmp_path / "checkpoints"):
        model8, clip = host.node("CheckpointLoaderSimple")().load_checkpoint("standin_sdxl_fp8.safetensors")[:2]
    positive = host.node("CLIPTextEncode")().encode(clip, "a lighthouse at dusk")[0]
    del clip
    # the fp8 values are what runs (on this CPU ComfyUI upcasts them: it keeps fp8 only with fp8 compute
    # or too little memory, model_management.unet_dtype)
    weight = model8.model.diffusion_model.input_blocks[4][1].transformer_blocks[0].attn2.to_q.weight
    print(f"\nfp8 checkpoint's UNet loaded as {weight.dtype}")
    assert torch.equal(weight.float(), stored.float())

    unet = host.node("UNETLoader")().load_unet(SDXL_DIFFUSION_MODEL, "default")[0]
    unet8 = host.node("UNETLoader")().load_unet(SDXL_DIFFUSION_MODEL, "fp8_e4m3fn")[0]
    assert unet8.model.diffusion_model.input_blocks[4][1].transformer_blocks[0].attn2.to_q.weight.dtype == \
        torch.float8_e4m3fn
    full, no_lora = sdxl_latent(host, unet, positive), sdxl_latent(host, unet, positive, lora=False)
    results = {"SDXL fp8 checkpoint (UNet weights float8_e4m3fn) + SwD LoRA": sdxl_latent(host, model8, positive),
               "SDXL UNETLoader fp8_e4m3fn + SwD LoRA": sdxl_latent(host, unet8, positive)}
    comfy.model_management.unload_all_models()
    assert (full - no_lora).abs().max().item() > 1e-2
    check_against_full_precision(results, full, no_lora)


# --------------------------------------------------------------------------- FLUX

def test_flux_swd_lora_on_fp8_files_stays_close_to_full_precision(host, tmp_path):
    """FLUX.1-dev in fp8 two ways, as the shipped fp8 workflow loads it: a diffusion model whose weight
    matrices are stored in float8_e4m3fn (as Kijai's ``flux1-dev-fp8-e4m3fn.safetensors``:
    ``standins.common.fp8_weights``) through UNETLoader fp8_e4m3fn, and UNETLoader fp8_e4m3fn on the bf16
    file; each with SwD LoRA Loader, against the bf16 file loaded at full precision with the LoRA."""
    import comfy.model_management

    from harness.standins.common import fp8_weights

    sd = safetensors.torch.load_file(MODELS / "diffusion_models" / FLUX_DIFFUSION_MODEL)
    fp8 = fp8_weights(sd)
    assert sum(v.dtype == torch.float8_e4m3fn for v in fp8.values()) > 10
    key = "double_blocks.0.img_attn.qkv.weight"
    stored = fp8[key]
    with host.model_folder("diffusion_models", tmp_path):
        safetensors.torch.save_file(fp8, tmp_path / "standin_flux_fp8.safetensors")
        del sd, fp8
        model8 = host.node("UNETLoader")().load_unet("standin_flux_fp8.safetensors", "fp8_e4m3fn")[0]
    weight = model8.model.diffusion_model.double_blocks[0].img_attn.qkv.weight
    assert weight.dtype == torch.float8_e4m3fn and torch.equal(weight, stored)
    full = host.node("UNETLoader")().load_unet(FLUX_DIFFUSION_MODEL, "default")[0]
    cast8 = host.node("UNETLoader")().load_unet(FLUX_DIFFUSION_MODEL, "fp8_e4m3fn")[0]
    assert cast8.model.diffusion_model.double_blocks[0].img_attn.qkv.weight.dtype == torch.float8_e4m3fn

    g = torch.Generator().manual_seed(4)
    positive = host.node("FluxGuidance").execute(
        [[torch.randn(1, 12, 768, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]], 4.5).args[0]

    def latent(model, lora=FLUX_LORA):
        return swd_latent(host, model, positive, lora, "FLUX.1-dev, 4 steps", (1, 16, 32, 24))

    reference, no_lora = latent(full), latent(full, lora=None)
    results = {"FLUX fp8 file (float8_e4m3fn weights) + SwD LoRA": latent(model8),
               "FLUX UNETLoader fp8_e4m3fn + SwD LoRA": latent(cast8)}
    comfy.model_management.unload_all_models()
    assert (reference - no_lora).abs().max().item() > 1e-2
    check_against_full_precision(results, reference, no_lora)
    # the file stored in fp8 holds the weights UNETLoader's cast to fp8 makes (round to nearest)
    assert torch.equal(*results.values())
