"""torch.compile with SwD: compilations and image times over a sequence of sizes (``bench compile``).

    python3 scripts/dev.py bench compile                # CPU: the SD3.5 and FLUX file stand-ins, inductor
    python3 scripts/dev.py bench compile --mode gpu     # CUDA (same stand-ins; the GPU section is pending here)
    python3 scripts/dev.py bench compile --no-write     # print only

One process; for each run kind, dynamo is reset (``torch._dynamo.reset()``, counters cleared), then
ComfyUI's ``TorchCompileModel`` (inductor) is applied to the stand-in model with the SwD LoRA (SwD
LoRA Loader), and a sequence of images is made: square, 3:2, 2:3, square batch 2, then the same four
again. Per image: wall time, graphs compiled (dynamo's ``counters["stats"]["unique_graphs"]``),
dynamo frames compiled and the time spent compiling (``compilation_time_metrics``). Run kinds:

* ``swd``: SwD Sampler as shipped (the pack marks the latent's height and width dynamic when the
  model is compiled: see ``nodes/compile_hints.py``);
* ``swd-unmarked``: SwD Sampler with that marking turned off (the behaviour before it);
* ``stock``: ``SamplerCustom`` + ``KSamplerSelect(euler)`` with the same sigmas at full size.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import time
from pathlib import Path

import torch

from harness import paths
from harness.comfy_host import ComfyHost, Host

from .measure import machine_info, versions

SEQUENCE = ((256, 256, 1), (384, 256, 1), (256, 384, 1), (256, 256, 2))  # (width, height, batch), pixels
KINDS = ("swd", "swd-unmarked", "stock")
MODELS = {"sd3": (paths.SD3_DIFFUSION_MODEL, paths.SD3_LORA, "SD3.5 Large, 6 steps"),
          "flux": (paths.FLUX_DIFFUSION_MODEL, paths.FLUX_LORA, "FLUX.1-dev, 4 steps"),
          "sdxl": (paths.SDXL_DIFFUSION_MODEL, paths.SDXL_LORA, "SDXL, 4 steps")}
LATENT_CHANNELS = {"sd3": 16, "flux": 16, "sdxl": 4}
#: one section per mode and family, so that a family's rerun leaves the others' figures in place
SECTION = "compile-{mode}-{family}"
#: what BENCHMARKS.md holds for a mode until a family of it is measured
PENDING_SECTION = "compile-{mode}"


class PytorchAttentionHost(Host):
    """`Host` with ComfyUI's ``--use-pytorch-cross-attention`` (its default on NVIDIA): its CPU default, the
    chunked sub-quadratic attention, breaks the graph to read the free memory and guards on it."""

    def __init__(self):
        ComfyHost.__init__(self, pytorch_attention=True)
        self.models = paths.MODELS


def conditioning(family: str, batch: int, width: int = 1024, height: int = 1024):
    """Random conditioning for a file stand-in (batch 1: ComfyUI repeats it for a larger batch); ``width`` and
    ``height`` (the image's, in pixels) are what CLIPTextEncodeSDXL adds for SDXL, ignored otherwise."""
    g = torch.Generator().manual_seed(11)
    if family == "flux":  # the FLUX stand-in takes CLIP-L's 768-wide context; FluxGuidance 4.5
        return [[torch.randn(1, 20, 768, generator=g), {"pooled_output": torch.randn(1, 768, generator=g),
                                                         "guidance": 4.5}]]
    if family == "sdxl":  # 77 tokens of CLIP-L + OpenCLIP-G (2048), OpenCLIP-G's pooled 1280, the size, no crop
        return [[torch.randn(1, 77, 2048, generator=g),
                 {"pooled_output": torch.randn(1, 1280, generator=g), "width": width, "height": height,
                  "crop_w": 0, "crop_h": 0, "target_width": width, "target_height": height}]]
    return [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]


def dynamo_stats() -> dict:
    from torch._dynamo.utils import compilation_time_metrics, counters

    compile_s = sum(sum(v) for k, v in compilation_time_metrics.items() if k.endswith("compile_inner"))
    return {"graphs": counters["stats"]["unique_graphs"], "frames": counters["frames"]["ok"],
            "compile_s": compile_s}


def model_for(host: Host, family: str):
    unet, lora, _ = MODELS[family]
    model = host.node("UNETLoader")().load_unet(unet, "default")[0]
    model = host.node("SwDLoraLoader").execute(model, lora, 1.0).args[0]
    return host.node("TorchCompileModel").execute(model, "inductor").args[0]


def image(host: Host, model, kind: str, family: str, width: int, height: int, batch: int, seed: int):
    preset = MODELS[family][2]
    sched, sigmas = host.node("SwDSchedule").execute(preset, "", "").args
    latent = {"samples": torch.zeros(batch, LATENT_CHANNELS[family], height // 8, width // 8)}
    cond = conditioning(family, batch)
    if kind == "stock":
        sampler = host.node("KSamplerSelect").execute("euler").args[0]
        return host.node("SamplerCustom").execute(model, True, seed, 1.0, cond, cond, sampler, sigmas,
                                                  latent).args[0]["samples"]
    return host.node("SwDSampler").execute(model, cond, cond, latent, sched, seed, 1.0, "bicubic").args[0]["samples"]


@contextlib.contextmanager
def marking(host: Host, on: bool):
    hints = host.pack.nodes.compile_hints
    old = hints.ENABLED
    hints.ENABLED = on
    try:
        yield
    finally:
        hints.ENABLED = old


def run_kind(host: Host, family: str, kind: str, log=print) -> list[dict]:
    import comfy.model_management

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch._dynamo.utils.compilation_time_metrics.clear()
    host.release_memory()
    model = model_for(host, family)
    rows = []
    with marking(host, kind != "swd-unmarked"), torch.inference_mode():
        for rnd in (1, 2):
            for width, height, batch in SEQUENCE:
                before = dynamo_stats()
                t0 = time.perf_counter()
                image(host, model, kind, family, width, height, batch, seed=rnd)
                wall = time.perf_counter() - t0
                after = dynamo_stats()
                row = {"round": rnd, "width": width, "height": height, "batch": batch, "wall_s": wall,
                       "new_graphs": after["graphs"] - before["graphs"],
                       "new_frames": after["frames"] - before["frames"],
                       "compile_s": after["compile_s"] - before["compile_s"], "graphs": after["graphs"]}
                rows.append(row)
                log(f"{family} {kind:13s} round {rnd} {width}x{height} b{batch}: {wall:7.1f} s, "
                    f"+{row['new_graphs']} graphs ({row['compile_s']:.1f} s compiling), total {after['graphs']}")
    comfy.model_management.unload_all_models()
    return rows


def render(report: dict, family: str) -> str:
    """``family``'s section of BENCHMARKS.md from ``report``."""
    m, v, mode = report["machine"], report["versions"], report["mode"]
    section = SECTION.format(mode=mode, family=family)
    out = [f"<!-- bench:{section}:begin -->",
           f"## torch.compile ({mode.upper()}), {family}: compilations over a sequence of sizes", "",
           f"Measured {report['date']} with `python3 scripts/dev.py bench compile --mode {mode} --family {family}` "
           f"(`dev/bench/compile.py`). Machine: {m['cpu']}, {m['cpus_usable']} usable CPUs, GPU: {m['gpu'] or 'none'}; "
           f"torch {v['torch']}, ComfyUI {v['comfyui']}, pack {v['pack_commit']}. The file stand-ins (tiny "
           f"random models: the times are compile and framework overhead, not model work), SwD LoRA Loader, "
           f"`TorchCompileModel(inductor)`, cfg 1. Sequence: "
           + ", ".join(f"{w}x{h}" + (f" batch {b}" if b > 1 else "") for w, h, b in SEQUENCE)
           + ", then the same four again. \"graphs\": dynamo's unique graphs compiled during the image. Runs: "
           "`swd` SwD Sampler as shipped (compile hints on: `nodes/compile_hints.py`), `swd-unmarked` the same with "
           "the hints off (the behaviour before them), `stock` SamplerCustom + euler with SwD's sigmas at full size. "
           "ComfyUI with `--use-pytorch-cross-attention` (its NVIDIA default; its CPU default attention breaks the "
           "graph to read the free memory and guards on it: 19 graphs for the first image).", ""]
    kinds = report["results"][family]
    heads = [f"{r['width']}x{r['height']}" + (f" b{r['batch']}" if r["batch"] > 1 else "")
             + ("" if r["round"] == 1 else " (again)") for r in next(iter(kinds.values()))]
    out += [f"**{family}** ({MODELS[family][2]}):", "", "| run | " + " | ".join(heads) + " | graphs |",
            "|---|" + "---|" * (len(heads) + 1)]
    for kind, rows in kinds.items():
        cells = [f"{r['wall_s']:.1f} s, +{r['new_graphs']}" for r in rows]
        out.append(f"| {kind} | " + " | ".join(cells) + f" | {rows[-1]['graphs']} |")
    out += ["", f"<!-- bench:{section}:end -->"]
    return "\n".join(out)


def write(section_text: str, section: str, path: Path = paths.BENCHMARKS_MD) -> None:
    """Put ``section_text`` between ``section``'s markers in ``path`` (BENCHMARKS.md), or append it; an empty
    ``section_text`` removes the section."""
    text = path.read_text() if path.exists() else ""
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    if begin in text and end in text:
        head, tail = text[:text.index(begin)], text[text.index(end) + len(end):]
        text = head + section_text + tail if section_text else (head + tail.lstrip("\n")).rstrip("\n") + "\n"
    elif section_text:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section_text + "\n"
    else:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench compile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--family", choices=("all", *MODELS), default="all")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--no-write", action="store_true", help="print only; BENCHMARKS.md untouched")
    args = ap.parse_args(argv)
    if args.mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs CUDA")
    t0 = time.perf_counter()
    host = PytorchAttentionHost()
    families = list(MODELS) if args.family == "all" else [args.family]
    results = {f: {k: run_kind(host, f, k) for k in args.kinds.split(",")} for f in families}
    report = {"mode": args.mode, "results": results, "date": datetime.date.today().isoformat(),
              "machine": machine_info(), "versions": versions(paths.ROOT), "wall_s": time.perf_counter() - t0}
    for family in families:
        text = render(report, family)
        print(text)
        if not args.no_write:
            write(text, SECTION.format(mode=args.mode, family=family))
    if not args.no_write:  # measured now: the mode's "pending" note goes
        write("", PENDING_SECTION.format(mode=args.mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
