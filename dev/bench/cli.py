"""SwD benchmarks: the sampler's overhead, SwD's speedup, the diffusers reference, peak memory.

    python3 scripts/dev.py bench                       # CPU (default): SD3-shaped random MMDiT, 512x512
    python3 scripts/dev.py bench --mode gpu            # GPU: SD3.5 Large + Medium architectures, bf16, 1024x1024
    python3 scripts/dev.py bench --mode gpu --tiny     # the GPU code path with tiny models (runs on CPU too)
    python3 scripts/dev.py bench --family flux         # one family only (default: all; each has its own section)
    python3 scripts/dev.py bench --mode gpu --family sdxl   # GPU: SDXL base 1.0 architecture, bf16, 1024x1024
    PYTHONPATH=dev .venv/bin/python -m bench --help    # what the launcher runs

What is measured and how: BENCHMARKS.md. Each mode and family rewrites only its own section there
(``--out``); ``--tiny`` runs are smoke runs and go to ``bench/results/BENCHMARKS-tiny.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from harness import paths
from harness.paths import ROOT

from .cases import FAMILIES, REQUIRED_VARIANTS, VARIANTS
from .report import BENCHMARKS, render_section, section_id, update_benchmarks
from .runner import run_cases

RESULTS_DIR = ROOT / "bench" / "results"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny models: a quick check of the code path")
    ap.add_argument("--family", choices=("all", *FAMILIES), default="all",
                    help="model family to run (default all); each family's section is rewritten on its own")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (medians; default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--size", type=int, help="final image side in pixels (multiple of 16)")
    ap.add_argument("--preset", help="SwD schedule preset name (default: the case's)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                    help="weights and compute dtype (default: bfloat16 for --mode gpu on CUDA, else float32)")
    ap.add_argument("--pytorch-attention", action="store_true",
                    help="ComfyUI with --use-pytorch-cross-attention (its CPU default is sub-quadratic attention)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated runs to time (default all: {','.join(VARIANTS)}; "
                         f"{','.join(REQUIRED_VARIANTS)} are always needed)")
    ap.add_argument("--sdpa-pass", choices=("auto", "off"), default="auto",
                    help="auto: when ComfyUI's attention is not PyTorch SDPA (its CPU default), time the "
                         "scale-wise runs again in a second process with --pytorch-attention, the kernel "
                         "diffusers uses (default auto)")
    add_shared_options(ap, over="the case", json_name="<mode>[-tiny]")
    ap.add_argument("--comfyui", type=Path, default=paths.COMFYUI)
    return ap


def add_shared_options(ap: argparse.ArgumentParser, over: str, json_name: str) -> None:
    """The options every interleaved bench takes: the shared-machine discard rule and where results go."""
    ap.add_argument("--max-other-load", type=float, default=0.2,
                    help="a timed run during which other processes kept more than this many cores busy is "
                         "discarded and repeated (default 0.2; for shared machines)")
    ap.add_argument("--retries", type=int, default=4,
                    help=f"discarded runs allowed per repetition, in total over {over} (default 4)")
    ap.add_argument("--out", type=Path, help="markdown file (default BENCHMARKS.md; tiny: "
                                             "bench/results/BENCHMARKS-tiny.md; '-': none)")
    ap.add_argument("--json", type=Path, help=f"raw results (default bench/results/{json_name}.json)")


def sdpa_pass(args, child_json: Path) -> list[dict]:
    """The scale-wise runs again with ComfyUI on PyTorch SDPA; returns that run's cases.

    A second process because ComfyUI picks its attention function once, from its arguments, when
    ``comfy.ldm.modules.attention`` is first imported: this process cannot switch kernels.
    """
    child = [sys.executable, "-m", "bench", "--mode", args.mode, "--family", args.family, "--reps", str(args.reps),
             "--warmup", str(args.warmup), "--variants", ",".join(REQUIRED_VARIANTS), "--pytorch-attention",
             "--sdpa-pass", "off", "--out", "-", "--json", str(child_json), "--comfyui", str(args.comfyui),
             "--max-other-load", str(args.max_other_load), "--retries", str(args.retries)]
    for flag, value in (("--size", args.size), ("--preset", args.preset), ("--dtype", args.dtype)):
        if value is not None:
            child += [flag, str(value)]
    child += ["--tiny"] if args.tiny else []
    print("\nsecond pass, ComfyUI with --use-pytorch-cross-attention:", " ".join(child[1:]), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(paths.DEV), os.environ.get("PYTHONPATH")])))
    subprocess.run(child, check=True, env=env)
    return json.loads(child_json.read_text())["cases"]


def main(argv: list[str] | None = None) -> int:
    from harness.comfy_host import ComfyHost

    argv = sys.argv[1:] if argv is None else argv
    ap = parser()
    args = ap.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    if args.size is not None and (args.size < 16 or args.size % 16):
        ap.error("--size must be a positive multiple of 16 pixels")
    if args.reps < 5 and not args.tiny:
        print("note: fewer than 5 repetitions", file=sys.stderr)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if any(v not in VARIANTS for v in variants) or any(v not in variants for v in REQUIRED_VARIANTS):
        ap.error(f"--variants: choose among {','.join(VARIANTS)}, including {','.join(REQUIRED_VARIANTS)}")

    t0 = time.perf_counter()
    host = ComfyHost(args.comfyui, pytorch_attention=args.pytorch_attention)
    if args.preset and args.preset not in host.swd_core.PRESETS:
        ap.error(f"unknown preset {args.preset!r}; known: {', '.join(host.swd_core.PRESETS)}")
    command = " ".join(shlex.quote(a) for a in argv)
    families = tuple(FAMILIES) if args.family == "all" else (args.family,)
    report = run_cases(host, args.mode, args.tiny, reps=args.reps, warmup=args.warmup, families=families,
                       size=args.size,
                       preset=args.preset, dtype=args.dtype, variants=variants, command=command,
                       max_other_load=args.max_other_load, retries=args.retries)
    suffix = f"{args.mode}-tiny" if args.tiny else args.mode
    json_path = args.json or RESULTS_DIR / f"{suffix}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if (args.sdpa_pass == "auto" and not args.pytorch_attention
            and any(c["comfy_attention"] != "attention_pytorch" for c in report["cases"])):
        second = sdpa_pass(args, json_path.with_name(json_path.stem + "-sdpa.json"))
        for case, other in zip(report["cases"], second, strict=True):
            case["sdpa_pass"] = other
    report["wall_s"] = time.perf_counter() - t0
    json_path.write_text(json.dumps(report, indent=1, default=str))
    if str(args.out) == "-":
        print(f"\nwrote {json_path}")
        return 0
    out = args.out or (RESULTS_DIR / "BENCHMARKS-tiny.md" if args.tiny else BENCHMARKS)
    for family in families:
        section = render_section(args.mode, report, family)
        update_benchmarks(out, section_id(args.mode, family), section, host.swd_core)
        print(section)
    print(f"\nwrote {out} and {json_path}")
    return 0
