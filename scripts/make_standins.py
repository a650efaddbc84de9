#!/usr/bin/env python3
"""Write small, deterministic, random-weight stand-in model files in the real formats.

    python scripts/make_standins.py --out DIR [--seed 0] [--force]

Nothing is downloaded: every weight is drawn from torch's RNG (seeded per model), so the
same seed (and the same torch) gives bit-identical files. The result is cached:
``DIR/standins.json`` records the seed, ``STANDINS_VERSION``, the torch version and the
files; when it matches and every file is there, the script does nothing.

Files (the names are a contract used by the tests, the demo and the benchmarks):

* ``diffusers/sd35-standin/transformer/``  diffusers ``SD3Transformer2DModel`` (tiny, SD3.5-Large-shaped)
* ``diffusers/sd35-standin/vae/``          diffusers ``AutoencoderKL`` with the SD3 VAE config (full size)
* ``diffusion_models/swd-standin-sd35-transformer.safetensors``  the same transformer, one file, diffusers keys
* ``vae/swd-standin-sd35-vae.safetensors``  the same VAE, one file, ComfyUI/LDM keys, fp16
* ``checkpoints/swd-standin-sd35.safetensors``  ComfyUI single-file checkpoint: MMDiT under
  ``model.diffusion_model.`` (ComfyUI's MMDiT keys) + VAE under ``first_stage_model.``; no text encoders
* ``text_encoders/swd-standin-clip_l.safetensors``  full-size CLIP-L (``text_model.*``, ``text_projection.weight``), fp16
* ``loras/swd-standin-lora/``  PEFT LoRA (``adapter_config.json`` + ``adapter_model.safetensors``) on the transformer

The module is importable (load it with ``importlib.util.spec_from_file_location``); the
builders (``build_transformer``, ``build_vae``, ``build_clip_l``, ``save_peft_lora``,
``transformer_to_comfy_mmdit``, ``write_standins``) let tests make variants in temporary folders.

ComfyUI is imported only for the ComfyUI-format files (key conversion); it is found through
``COMFYUI_PATH`` (default ``<repo>/.host/ComfyUI``) and put at the *front* of ``sys.path``.
The repository root is never put on ``sys.path`` (the pack's ``nodes/`` would shadow ComfyUI's).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

# Bump when anything about the generated files changes (configs, seeding, layout).
STANDINS_VERSION = 1
MANIFEST_NAME = "standins.json"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COMFYUI_PATH = REPO_ROOT / ".host" / "ComfyUI"

# Relative paths inside the output folder (contract: keep exactly).
DIFFUSERS_DIR = "diffusers/sd35-standin"
TRANSFORMER_DIR = f"{DIFFUSERS_DIR}/transformer"
VAE_DIR = f"{DIFFUSERS_DIR}/vae"
DIFFUSION_MODEL_FILE = "diffusion_models/swd-standin-sd35-transformer.safetensors"
VAE_FILE = "vae/swd-standin-sd35-vae.safetensors"
CHECKPOINT_FILE = "checkpoints/swd-standin-sd35.safetensors"
CLIP_L_FILE = "text_encoders/swd-standin-clip_l.safetensors"
LORA_DIR = "loras/swd-standin-lora"

# Tiny, but with SD3.5 Large's structure (qk RMS norm, 4096-wide context, 2048 pooled).
TRANSFORMER_CONFIG = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    num_layers=2,
    attention_head_dim=64,
    num_attention_heads=2,
    joint_attention_dim=4096,
    caption_projection_dim=128,
    pooled_projection_dim=2048,
    out_channels=16,
    pos_embed_max_size=192,
    qk_norm="rms_norm",
)

# The SD3 / SD3.5 VAE config (full size: ComfyUI detects VAEs by their key layout).
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2,
    act_fn="silu",
    norm_num_groups=32,
    use_quant_conv=False,
    use_post_quant_conv=False,
    scaling_factor=1.5305,
    shift_factor=0.0609,
    sample_size=1024,
    force_upcast=True,
)

# Standard CLIP-L text tower (OpenAI ViT-L/14); full size because ComfyUI builds it from a fixed config.
CLIP_L_CONFIG = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    projection_dim=768,
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

# SwD-style LoRA (upstream trains rank 64 with these targets; rank 4 keeps it small).
LORA_CONFIG = dict(
    r=4,
    lora_alpha=8,
    target_modules=["to_q", "to_k", "to_v", "to_out.0", "net.0.proj", "net.2"],
    init_lora_weights=False,  # random A and B: the LoRA has a visible effect
)

# Sub-seeds so that the models do not share random streams.
_SEED_OFFSETS = {"transformer": 0, "vae": 1, "clip_l": 2, "lora": 3}


# --------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's CPU RNG for the block, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def comfyui_path() -> Path:
    env = os.environ.get("COMFYUI_PATH")
    return Path(env).resolve() if env else DEFAULT_COMFYUI_PATH


def import_comfy():
    """Import ComfyUI's `comfy` package from COMFYUI_PATH (root put at the front of sys.path)."""
    root = comfyui_path()
    if not (root / "comfy" / "utils.py").exists():
        raise RuntimeError(f"no ComfyUI at {root} (set COMFYUI_PATH)")
    root_s = str(root)
    if not sys.path or sys.path[0] != root_s:
        if root_s in sys.path:
            sys.path.remove(root_s)
        sys.path.insert(0, root_s)
    import comfy  # noqa: F401  (a namespace package in ComfyUI: no __init__.py)
    import comfy.diffusers_convert
    import comfy.utils

    got = Path(comfy.utils.__file__).resolve().parent.parent
    if got != root:
        raise RuntimeError(f"`comfy` was imported from {got}, not from COMFYUI_PATH={root}")
    return comfy


def _save_safetensors(sd: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.detach().contiguous() for k, v in sd.items()}, str(tmp), metadata=metadata or {"format": "pt"})
    os.replace(tmp, path)


# --------------------------------------------------------------------------- builders

def build_transformer(seed: int = 0, **overrides):
    """Random-init diffusers SD3Transformer2DModel (fp32, eval mode)."""
    from diffusers import SD3Transformer2DModel

    cfg = {**TRANSFORMER_CONFIG, **overrides}
    with _seeded(seed * 16 + _SEED_OFFSETS["transformer"]):
        model = SD3Transformer2DModel(**cfg)
    return model.eval().requires_grad_(False)


def build_vae(seed: int = 0, **overrides):
    """Random-init diffusers AutoencoderKL with the SD3 VAE config.

    Weights are rounded through fp16 so the fp32 diffusers copy and the fp16 single files
    hold exactly the same values.
    """
    from diffusers import AutoencoderKL

    cfg = {**VAE_CONFIG, **overrides}
    with _seeded(seed * 16 + _SEED_OFFSETS["vae"]):
        model = AutoencoderKL(**cfg)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return model.eval().requires_grad_(False)


def build_clip_l(seed: int = 0):
    """Random-init full-size transformers CLIPTextModelWithProjection (CLIP-L)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with _seeded(seed * 16 + _SEED_OFFSETS["clip_l"]):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L_CONFIG))
    return model.eval().requires_grad_(False)


def clip_l_state_dict(model, dtype=torch.float16) -> dict:
    """The keys ComfyUI expects for a CLIP-L file: `text_model.*` and `text_projection.weight`."""
    sd = {k: v.to(dtype) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert "text_projection.weight" in sd and "text_model.encoder.layers.0.mlp.fc1.weight" in sd
    return sd


def save_peft_lora(transformer, out_dir, seed: int = 0, **lora_config_kwargs) -> Path:
    """Make a PEFT LoRA on (a copy of) `transformer` and save it with PEFT's save_pretrained.

    `lora_config_kwargs` override LORA_CONFIG (e.g. use_rslora=True, rank_pattern={...},
    alpha_pattern={...}). The transformer passed in is left untouched.
    """
    from peft import LoraConfig, get_peft_model

    out_dir = Path(out_dir)
    cfg = {**LORA_CONFIG, **lora_config_kwargs}
    base = copy.deepcopy(transformer)
    with _seeded(seed * 16 + _SEED_OFFSETS["lora"]):
        peft_model = get_peft_model(base, LoraConfig(**cfg))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    peft_model.save_pretrained(str(out_dir), safe_serialization=True)
    # PEFT's model card is boilerplate that names no weights; the Hub folders' contract is the two files.
    (out_dir / "README.md").unlink(missing_ok=True)
    cfg_path = out_dir / "adapter_config.json"
    conf = json.loads(cfg_path.read_text())
    conf["base_model_name_or_path"] = None  # nothing machine-specific
    if isinstance(conf.get("target_modules"), list):  # PEFT writes a set: order varies with PYTHONHASHSEED
        conf["target_modules"] = sorted(conf["target_modules"])
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    return out_dir


# --------------------------------------------------------------------------- ComfyUI formats

def transformer_to_comfy_mmdit(sd: dict, output_prefix: str = "model.diffusion_model.") -> dict:
    """diffusers SD3 transformer keys -> ComfyUI MMDiT keys, via comfy.utils.mmdit_to_diffusers.

    The map goes diffusers key -> comfy key, or -> (comfy key, (dim, start, length)[, fn]) for
    slices of the fused qkv weights and for tensors that need `swap_scale_shift`.
    """
    comfy = import_comfy()
    depth = sd["pos_embed.proj.weight"].shape[0] // 64
    num_blocks = len({k.split(".")[1] for k in sd if k.startswith("transformer_blocks.")})
    key_map = comfy.utils.mmdit_to_diffusers({"depth": depth, "num_blocks": num_blocks}, output_prefix=output_prefix)

    out: dict = {}
    slices: dict = {}
    used = set()
    for dkey, target in key_map.items():
        if dkey not in sd:
            continue
        used.add(dkey)
        w = sd[dkey]
        if isinstance(target, str):
            out[target] = w
            continue
        ckey, offset = target[0], target[1]
        if len(target) > 2 and target[2] is not None:
            w = target[2](w)
        if offset is None:
            out[ckey] = w
        else:
            slices.setdefault(ckey, []).append((offset, w))
    for ckey, parts in slices.items():
        dim = parts[0][0][0]
        total = max(start + length for (_, start, length), _ in parts)
        shape = list(parts[0][1].shape)
        shape[dim] = total
        fused = torch.empty(shape, dtype=parts[0][1].dtype)
        covered = torch.zeros(total, dtype=torch.bool)
        for (d, start, length), w in parts:
            if d != dim or w.shape[d] != length:
                raise ValueError(f"inconsistent slice for {ckey}: {(d, start, length)} vs {tuple(w.shape)}")
            fused.narrow(dim, start, length).copy_(w)
            covered[start:start + length] = True
        if not bool(covered.all()):
            raise ValueError(f"fused tensor {ckey} not fully covered")
        out[ckey] = fused
    unused = sorted(set(sd) - used)
    if unused:
        raise ValueError(f"diffusers keys with no ComfyUI MMDiT mapping: {unused[:8]}")
    return out


def vae_to_comfy(sd: dict) -> dict:
    """diffusers AutoencoderKL keys -> ComfyUI/LDM VAE keys (what comfy.sd.VAE does on load)."""
    comfy = import_comfy()
    return comfy.diffusers_convert.convert_vae_state_dict(dict(sd))


# --------------------------------------------------------------------------- driver

def _expected_files() -> dict:
    return {
        "transformer_dir": TRANSFORMER_DIR,
        "transformer_config": f"{TRANSFORMER_DIR}/config.json",
        "transformer_weights": f"{TRANSFORMER_DIR}/diffusion_pytorch_model.safetensors",
        "vae_dir": VAE_DIR,
        "vae_config": f"{VAE_DIR}/config.json",
        "vae_weights": f"{VAE_DIR}/diffusion_pytorch_model.safetensors",
        "diffusion_model": DIFFUSION_MODEL_FILE,
        "vae": VAE_FILE,
        "checkpoint": CHECKPOINT_FILE,
        "clip_l": CLIP_L_FILE,
        "lora_dir": LORA_DIR,
        "lora_config": f"{LORA_DIR}/adapter_config.json",
        "lora_weights": f"{LORA_DIR}/adapter_model.safetensors",
    }


def _manifest(out_dir: Path, seed: int) -> dict:
    files = _expected_files()
    return {
        "version": STANDINS_VERSION,
        "seed": seed,
        "torch": torch.__version__.split("+")[0],
        "files": files,
        "sizes": {k: (out_dir / p).stat().st_size for k, p in files.items() if (out_dir / p).is_file()},
    }


def _cached(out_dir: Path, seed: int) -> bool:
    path = out_dir / MANIFEST_NAME
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    files = _expected_files()
    if (old.get("version"), old.get("seed"), old.get("torch"), old.get("files")) != (
        STANDINS_VERSION, seed, torch.__version__.split("+")[0], files,
    ):
        return False
    sizes = old.get("sizes", {})
    for key, rel in files.items():
        p = out_dir / rel
        if not p.exists():
            return False
        if key in sizes and (not p.is_file() or p.stat().st_size != sizes[key]):
            return False
    return True


def write_standins(out_dir, seed: int = 0, force: bool = False, verbose: bool = False) -> dict:
    """Write every stand-in under `out_dir` (unless cached) and return {name: absolute Path}."""
    out_dir = Path(out_dir).resolve()
    paths = {k: out_dir / v for k, v in _expected_files().items()}
    if not force and _cached(out_dir, seed):
        if verbose:
            print(f"stand-ins up to date in {out_dir} (seed {seed})")
        return paths

    def log(msg):
        if verbose:
            print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    prev_grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        # 1-2: transformer (diffusers folder + one diffusers-keyed file)
        transformer = build_transformer(seed)
        shutil.rmtree(paths["transformer_dir"], ignore_errors=True)
        transformer.save_pretrained(str(paths["transformer_dir"]), safe_serialization=True)
        t_sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
        _save_safetensors(t_sd, paths["diffusion_model"])
        log("transformer")

        # 6: PEFT LoRA on that transformer
        save_peft_lora(transformer, paths["lora_dir"], seed=seed)
        log("lora")

        # 3: VAE (diffusers folder + ComfyUI-keyed single file)
        vae = build_vae(seed)
        shutil.rmtree(paths["vae_dir"], ignore_errors=True)
        vae.save_pretrained(str(paths["vae_dir"]), safe_serialization=True)
        vae_comfy = {k: v.to(torch.float16) for k, v in vae_to_comfy(vae.state_dict()).items()}
        del vae
        _save_safetensors(vae_comfy, paths["vae"])
        log("vae")

        # 4: ComfyUI checkpoint: MMDiT (comfy keys, fp32) + VAE (LDM keys, fp16), no text encoders
        ckpt = transformer_to_comfy_mmdit(t_sd, "model.diffusion_model.")
        ckpt.update({f"first_stage_model.{k}": v for k, v in vae_comfy.items()})
        _save_safetensors(ckpt, paths["checkpoint"])
        del ckpt, vae_comfy
        log("checkpoint")

        # 5: CLIP-L text encoder, fp16
        clip = build_clip_l(seed)
        _save_safetensors(clip_l_state_dict(clip), paths["clip_l"])
        del clip
        log("clip_l")
    finally:
        torch.set_grad_enabled(prev_grad)

    manifest = _manifest(out_dir, seed)
    tmp = out_dir / (MANIFEST_NAME + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / MANIFEST_NAME)
    log(f"done: {out_dir}")
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (ComfyUI models layout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if the manifest matches")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    write_standins(args.out, seed=args.seed, force=args.force, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
