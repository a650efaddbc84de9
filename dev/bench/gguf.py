"""GGUF with SwD: seconds per image and memory, Q8_0 and Q4_0 beside full precision (``bench gguf``).

    python3 scripts/dev.py bench gguf                  # CPU: the SD3.5, FLUX and SDXL file stand-ins, 256x256
    python3 scripts/dev.py bench gguf --mode gpu       # CUDA: the same stand-ins, 1024x1024
    python3 scripts/dev.py bench gguf --tiny           # smoke run, 64x64: bench/results/BENCHMARKS-tiny.md

One process; for each family three models are loaded and kept side by side: the stand-in's safetensors file by
``UNETLoader`` (weight dtype "default") and its Q8_0 and Q4_0 files (``harness.standins.gguf_files``: the same
weights quantised) by ComfyUI-GGUF's ``UnetLoaderGGUF``, each followed by SwD LoRA Loader (the family's SwD LoRA,
strength 1). SwD Sampler (the family's preset, batch 1, cfg 1, bicubic) then makes one image with each in turn
per repetition: the main bench's loop (``runner.Interleaved``: medians, runs interleaved, peak memory per run,
runs during which other processes kept the CPUs busy thrown away and repeated). Per run: the median time per
image and its ratio to full precision's, ComfyUI's size of the weights it loads (``ModelPatcher.model_size()``:
a GGUF file's packed bytes), the run's peak memory and its rise over the start, and how far the final latent
lies from full precision's. ComfyUI-GGUF needs ``.host/custom_nodes/ComfyUI-GGUF`` (``scripts/dev.py setup``).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import shlex
import sys
import time

import torch

from harness import paths, third_party
from harness.standins import gguf_files

from . import compile as standin_runs  # the file stand-ins' table, conditioning and section writer
from .cases import FAMILIES as BENCH_FAMILIES
from .cli import add_shared_options
from .measure import machine_info, sync, versions
from .report import load_note, mib, num
from .runner import Interleaved

KINDS = ("full", *gguf_files.QTYPES)
#: family -> (GGUF stem in ``gguf_files.SOURCES``, the report's name); file, LoRA and preset: `MODELS`
FAMILIES = {"sd3": ("sd35", "SD3.5"), "flux": ("flux1-dev", "FLUX.1-dev"), "sdxl": ("sdxl", "SDXL")}
MODELS = standin_runs.MODELS | {"sdxl": (paths.SDXL_DIFFUSION_MODEL, paths.SDXL_LORA, "SDXL, 4 steps")}
#: final image side by default; on the CPU 256 (GGUF's cost there, dequantising every weight at every forward, does not
#: grow with the image: at 512 px the FLUX stand-in's repetitions take minutes each on 2 cores)
PIXELS = {"cpu": 256, "gpu": 1024, "tiny": 64}
SECTION = "gguf-{}"
LAUNCHER = "python3 scripts/dev.py bench gguf"
RESULTS_DIR = paths.ROOT / "bench" / "results"


def gguf_host(host=None):
    """``host`` (default: ComfyUI in this process with the pack) with ComfyUI-GGUF loaded, as the tests load it."""
    from harness.comfy_host import ComfyHost

    folder = third_party.installed("ComfyUI-GGUF")
    if folder is None:
        raise SystemExit("ComfyUI-GGUF is not in .host/custom_nodes: `python3 scripts/dev.py setup` copies it from "
                         f"../shared/third_party (or ${third_party.ENV})")
    missing = [p for p in gguf_files.FILES.values() if not (paths.MODELS / p).is_file()]
    if missing:
        raise SystemExit(f"GGUF stand-ins missing (run `python3 scripts/dev.py setup`): {missing}")
    host = host or ComfyHost()
    if not host.load_custom_node(folder) or "UnetLoaderGGUF" not in host.nodes.NODE_CLASS_MAPPINGS:
        raise SystemExit("ComfyUI-GGUF failed to import (is `gguf` installed?)")
    return host


class GGUFBench(Interleaved):
    """One family: full precision, Q8_0 and Q4_0, each + the SwD LoRA, timed in turn by SwD Sampler."""

    def __init__(self, host, family: str, pixels: int, *, seed: int = 0, max_other_load: float = 0.2,
                 max_retries_per_rep: int = 0, log=print):
        import comfy.model_management

        self.host, self.family, self.pixels, self.seed, self.log = host, family, pixels, seed, log
        self.variants, self.label = KINDS, f"gguf-{family}"
        self.max_other_load, self.max_retries_per_rep = max_other_load, max_retries_per_rep
        self.device = comfy.model_management.get_torch_device()

    def load(self, kind: str):
        unet, lora, _ = MODELS[self.family]
        if kind == "full":
            model = self.host.node("UNETLoader")().load_unet(unet, "default")[0]
        else:
            name = gguf_files.file_name(FAMILIES[self.family][0], kind)
            model = self.host.node("UnetLoaderGGUF")().load_unet(name)[0]
        return self.host.node("SwDLoraLoader").execute(model, lora, 1.0).args[0]

    def setup(self) -> None:
        t0 = time.perf_counter()
        self.patchers = {kind: self.load(kind) for kind in KINDS}
        self.load_s = time.perf_counter() - t0
        self.preset = MODELS[self.family][2]
        self.schedule = self.host.node("SwDSchedule").execute(self.preset, "", "").args[0]
        self.cond = standin_runs.conditioning(self.family, 1, self.pixels, self.pixels)
        channels = BENCH_FAMILIES[self.family].LATENT_CHANNELS
        self.latent = {"samples": torch.zeros(1, channels, self.pixels // 8, self.pixels // 8)}
        self.outputs = {}

    def run_kind(self, kind: str):
        out = self.host.node("SwDSampler").execute(self.patchers[kind], self.cond, self.cond, self.latent,
                                                   self.schedule, self.seed, 1.0, "bicubic").args[0]["samples"]
        sync(self.device)
        return out

    def after_warmup(self) -> None:
        # on a GPU: how much of each model ComfyUI holds there (1.0: no lowvram weight streaming); CPU: None
        self.loaded = {k: (p.loaded_size() / max(1, p.model_size()) if self.device.type != "cpu" else None)
                       for k, p in self.patchers.items()}

    def run(self, reps: int, warmup: int) -> dict:
        self.setup()
        return self.result(self.repeat(reps, warmup), reps, warmup)

    def result(self, stats: dict, reps: int, warmup: int) -> dict:
        import comfy.ldm.modules.attention as comfy_attention

        s = {k: v.summary() for k, v in stats.items()}
        full, ref = s["full"], self.outputs["full"].float().cpu()
        runs = {}
        for kind, run in s.items():
            patcher = self.patchers[kind]
            weights = patcher.model_size()
            dtype = patcher.model.get_dtype()
            out = self.outputs[kind].float().cpu()
            runs[kind] = run | {
                "loader": "UNETLoader" if kind == "full" else "UnetLoaderGGUF",
                "file": MODELS[self.family][0] if kind == "full" else
                gguf_files.file_name(FAMILIES[self.family][0], kind),
                "weights_bytes": weights, "dtype": str(dtype).replace("torch.", ""),
                "compute_dtype": str(patcher.model.manual_cast_dtype or dtype).replace("torch.", ""),
                "time_vs_full": run["median_s"] / full["median_s"], "time_vs_full_min": run["min_s"] / full["min_s"],
                "footprint_bytes": weights + run["peak_over_start_bytes"],
                "latent_vs_full": ((out - ref).abs().max() / ref.abs().max()).item(),
                "comfy_loaded_fraction": self.loaded[kind],
            }
        for run in runs.values():
            run["footprint_vs_full"] = run["footprint_bytes"] / runs["full"]["footprint_bytes"]
        return {"family": self.family, "name": FAMILIES[self.family][1], "preset": self.preset,
                "steps": len(self.schedule.scales), "pixels": self.pixels, "latent": list(self.latent["samples"].shape),
                "device": str(self.device), "reps": reps, "warmup": warmup, "load_s": self.load_s,
                "comfy_attention": comfy_attention.optimized_attention.__name__,
                "memory_method": self.memory_method, "other_cores_busy": self.other_cores,
                "discarded_runs": self.discarded, "max_other_load": self.max_other_load, "runs": runs}

    def close(self) -> None:
        import comfy.model_management

        for name in ("patchers", "outputs"):
            self.__dict__.pop(name, None)
        comfy.model_management.unload_all_models()
        gc.collect()
        comfy.model_management.soft_empty_cache(True)


def run(host, mode: str, tiny: bool, *, families=tuple(FAMILIES), reps: int = 5, warmup: int = 1,
        size: int | None = None, command: str = "", max_other_load: float = 0.2, retries: int = 0, log=print) -> dict:
    """Every family of ``families``; returns the report (a JSON-able dict)."""
    t0 = time.perf_counter()
    cuda = torch.cuda.is_available()
    if mode == "gpu" and not cuda and not tiny:
        raise SystemExit("--mode gpu needs a CUDA device; `--mode gpu --tiny` runs the same code path on CPU")
    pixels = size or PIXELS["tiny" if tiny else mode]
    report = {"mode": mode, "tiny": tiny, "command": command, "section": SECTION.format(mode),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine_info(), "versions": versions(paths.ROOT), "families": []}
    for family in families:
        log(f"[gguf-{family}] {FAMILIES[family][1]}: {pixels}x{pixels} px, full precision, "
            + ", ".join(gguf_files.QTYPES))
        bench = GGUFBench(host, family, pixels, max_other_load=max_other_load, max_retries_per_rep=retries, log=log)
        try:
            report["families"].append(bench.run(reps, warmup))
        finally:
            bench.close()
    report["wall_s"] = time.perf_counter() - t0
    return report


def _label(kind: str, run: dict) -> str:
    if kind == "full":
        return f"full precision (`UNETLoader`, {run['dtype']}) + LoRA"
    return f"{kind} (`UnetLoaderGGUF`, computes in {run['compute_dtype']}) + LoRA"


def render_family(r: dict) -> list[str]:
    gpu = r["device"].startswith("cuda")
    peak = ("peak allocated MiB", "Δ over start MiB") if gpu else ("peak RSS MiB", "Δ RSS over start MiB")
    loaded = [x for x in (run["comfy_loaded_fraction"] for run in r["runs"].values()) if x is not None]
    note = ""
    if loaded:
        note = f" ComfyUI's models on the GPU: at least {100 * min(loaded):.0f}% of their weights"
        note += " (**partially loaded: ComfyUI streams weights, not comparable**)." if min(loaded) < 0.999 else "."
    lines = [f"**{r['name']}** (\"{r['preset']}\", {r['steps']} steps, {r['pixels']}x{r['pixels']} px): "
             f"median of {r['reps']} after {r['warmup']} warm-up round(s)." + load_note(r) + note, "",
             f"| run | weights MiB | median s | min–max s | time / full | {peak[0]} | {peak[1]} | "
             "weights + Δ MiB | weights + Δ / full | latent vs full |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, run in r["runs"].items():
        lines.append(f"| {_label(kind, run)} | {mib(run['weights_bytes'])} | {num(run['median_s'], 3)} | "
                     f"{num(run['min_s'], 3)}–{num(run['max_s'], 3)} | {num(run['time_vs_full'])} | "
                     f"{mib(run['peak_bytes'])} | {mib(run['peak_over_start_bytes'])} | "
                     f"{mib(run['footprint_bytes'])} | {num(run['footprint_vs_full'])} | "
                     + ("—" if kind == "full" else f"{run['latent_vs_full']:.1e}") + " |")
    return [*lines, ""]


def render(report: dict) -> str:
    m, v = report["machine"], report["versions"]
    mode = report["mode"].upper()
    first = report["families"][0] if report["families"] else {}
    mem = "peak `torch.cuda.max_memory_allocated`" if m["gpu"] else "peak RSS"
    out = [f"<!-- bench:{report['section']}:begin -->",
           f"## GGUF ({mode}): SwD Sampler on Q8_0 / Q4_0 beside full precision"
           + (" (tiny smoke run: not a benchmark)" if report["tiny"] else ""), "",
           f"Measured {report['date']} with `{(LAUNCHER + ' ' + report['command']).strip()}` (`dev/bench/gguf.py`). "
           f"Machine: {m['cpu']}, {m['cpus_usable']} usable CPUs, {m['ram_gib']:.0f} GiB RAM, "
           f"GPU: {m['gpu'] or 'none'}; "
           f"torch {v['torch']}, ComfyUI {v['comfyui']}, pack {v['pack_commit']}. The file stand-ins (small random "
           "models: the times are the model work at these sizes plus ComfyUI's and ComfyUI-GGUF's overhead), each "
           "loaded three times, kept side by side: `UNETLoader` (weight dtype \"default\") and ComfyUI-GGUF's "
           "`UnetLoaderGGUF` on the Q8_0 and Q4_0 files of the same weights (`harness.standins.gguf_files`), each "
           "followed by SwD LoRA Loader (strength 1); SwD Sampler, batch 1, cfg 1, runs interleaved. "
           f"Attention: ComfyUI `{first.get('comfy_attention', '?')}`. Memory: {first.get('memory_method', mem)}; "
           "\"weights\" is ComfyUI's size of the model it loads (`ModelPatcher.model_size()`: the GGUF files' packed "
           "bytes), \"Δ\" the run's rise over its start (activations, and GGUF's weights dequantised on the fly), "
           "\"weights + Δ\" one model's footprint (the absolute peaks hold all three models). \"latent vs full\": "
           f"max |Δ| / max |full precision's| of the final latent. Wall time of the whole run: "
           f"{report['wall_s'] / 60:.1f} min.", ""]
    for r in report["families"]:
        out += render_family(r)
    out.append(f"<!-- bench:{report['section']}:end -->")
    return "\n".join(out)


def pending(mode: str) -> str:
    section = SECTION.format(mode)
    return (f"<!-- bench:{section}:begin -->\n## GGUF ({mode.upper()}): SwD Sampler on Q8_0 / Q4_0 beside full "
            f"precision\n\nPending: rerun with `{LAUNCHER} --mode {mode}`"
            + (" on a CUDA machine (same stand-ins, 1024x1024; there GGUF's point is the memory of the weights). "
               "The code path is checked on CPU by `--mode gpu --tiny` and `tests/tools/test_bench.py`."
               if mode == "gpu" else ".")
            + f"\n<!-- bench:{section}:end -->")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="bench gguf", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--tiny", action="store_true", help="64x64, a quick check of the code path")
    ap.add_argument("--family", choices=("all", *FAMILIES), default="all")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (medians; default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--size", type=int, help="final image side in pixels (default: CPU 256, GPU 1024, tiny 64)")
    add_shared_options(ap, over="a family", json_name="gguf-<mode>[-tiny]")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    if args.size is not None and (args.size < 16 or args.size % 16):
        ap.error("--size must be a positive multiple of 16 pixels")
    host = gguf_host()
    families = tuple(FAMILIES) if args.family == "all" else (args.family,)
    report = run(host, args.mode, args.tiny, families=families, reps=args.reps, warmup=args.warmup, size=args.size,
                 command=" ".join(shlex.quote(a) for a in argv), max_other_load=args.max_other_load,
                 retries=args.retries)
    suffix = f"gguf-{args.mode}" + ("-tiny" if args.tiny else "")
    json_path = args.json or RESULTS_DIR / f"{suffix}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1, default=str))
    text = render(report)
    print(text)
    if str(args.out) == "-":
        print(f"\nwrote {json_path}")
        return 0
    out = args.out or (RESULTS_DIR / "BENCHMARKS-tiny.md" if args.tiny else paths.BENCHMARKS_MD)
    standin_runs.write(text, report["section"], out)
    for mode in ("cpu", "gpu"):  # the other mode's section, pending, where the file has none yet
        if f"<!-- bench:{SECTION.format(mode)}:begin -->" not in out.read_text():
            standin_runs.write(pending(mode), SECTION.format(mode), out)
    print(f"\nwrote {out} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
