"""Stand-in model files for every model family, written once into ComfyUI's model-folder layout.

    python -m harness.standins --out .host/models [--seed 0] [--force]

Each family is one module here exposing ``FILES`` (``{name: path in the models folder}``) and
``write(out_dir, seed, log)``; adding a family is adding its module to `FAMILIES`. The result is
cached: ``standins.json`` records the seed, `STANDINS_VERSION`, torch's version and the files;
when it matches and every file is there, nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from . import flux, flux_controlnet, gguf_files, sd3, sd3_controlnet, sdxl, sdxl_controlnet

FAMILIES = (sd3, flux, sdxl, sdxl_controlnet, sd3_controlnet, flux_controlnet)
#: Bump when anything about the generated files changes (configs, seeding, layout).
STANDINS_VERSION = 1
MANIFEST_NAME = "standins.json"


def expected_files() -> dict[str, str]:
    return {name: rel for family in FAMILIES for name, rel in family.FILES.items()}


def _torch_version() -> str:
    return torch.__version__.split("+")[0]


def _manifest(out_dir: Path, seed: int) -> dict:
    files = expected_files()
    return {"version": STANDINS_VERSION, "seed": seed, "torch": _torch_version(), "files": files,
            "sizes": {k: (out_dir / p).stat().st_size for k, p in files.items() if (out_dir / p).is_file()}}


def _cached(out_dir: Path, seed: int) -> bool:
    try:
        old = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    files = expected_files()
    if (old.get("version"), old.get("seed"), old.get("torch"), old.get("files")) != (
            STANDINS_VERSION, seed, _torch_version(), files):
        return False
    sizes = old.get("sizes", {})
    for key, rel in files.items():
        path = out_dir / rel
        if not path.exists():
            return False
        if key in sizes and (not path.is_file() or path.stat().st_size != sizes[key]):
            return False
    return True


def write_standins(out_dir, seed: int = 0, force: bool = False, verbose: bool = False) -> dict[str, Path]:
    """Write every family's stand-ins under ``out_dir`` (unless cached), then the GGUF files made from them
    (`gguf_files`: their own manifest, written where ComfyUI-GGUF is installed); ``{name: absolute path}``."""
    out_dir = Path(out_dir).resolve()
    result = {k: out_dir / v for k, v in expected_files().items()}
    if not force and _cached(out_dir, seed):
        if verbose:
            print(f"stand-ins up to date in {out_dir} (seed {seed})")
        gguf_files.write(out_dir, log=print if verbose else (lambda msg: None))
        return result
    t0 = time.perf_counter()

    def log(msg):
        if verbose:
            print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    with torch.no_grad():
        for family in FAMILIES:
            family.write(out_dir, seed, log)
    tmp = out_dir / (MANIFEST_NAME + ".partial")
    tmp.write_text(json.dumps(_manifest(out_dir, seed), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / MANIFEST_NAME)
    gguf_files.write(out_dir, log=log)
    log(f"done: {out_dir}")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write the stand-in model files.")
    ap.add_argument("--out", required=True, type=Path, help="output folder (ComfyUI models layout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if the manifest matches")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    write_standins(args.out, seed=args.seed, force=args.force, verbose=not args.quiet)
    return 0
