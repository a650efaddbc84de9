"""The Markdown report: one section per mode, between markers, inside BENCHMARKS.md.

The prose around the sections (how to rerun, what is measured, the FLOP model) lives in the
repository's BENCHMARKS.md above the first marker and is never written from here: every report
file starts with it, followed by the CPU and the GPU section.
"""
from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import torch

from harness.paths import BENCHMARKS_MD as BENCHMARKS

from .cases import FAMILIES, VARIANTS, baseline_steps, family_of
from .flops import predicted_speedup

BEGIN, END = "<!-- bench:{}:begin -->", "<!-- bench:{}:end -->"
MODES = ("cpu", "gpu")


def section_id(mode: str, family: str = "sd3") -> str:
    """The marker name of a mode's section for one family: ``cpu``/``gpu`` for SD3 (the first family),
    ``<mode>-<family>`` for the others (each family is measured and rewritten on its own)."""
    return mode if family == "sd3" else f"{mode}-{family}"


#: every section, in file order: each mode's families together
SECTIONS = tuple(section_id(m, f) for m in MODES for f in FAMILIES)
#: how the report names the command that made it: the launcher, and what the launcher runs
LAUNCHER = "python3 scripts/dev.py bench"
RUNS = "PYTHONPATH=dev .venv/bin/python -m bench"


def num(x: float, nd: int = 2) -> str:
    """``x`` with ``nd`` decimals, or "n/a"."""
    return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"


def mib(b: int) -> str:
    """Bytes as whole MiB."""
    return f"{b / 2 ** 20:.0f}"


def _ok(flag) -> str:
    return "yes" if flag else "**no**"


def _loaded_note(fraction) -> str:
    if fraction is None:
        return ""
    note = f" ComfyUI's model on the GPU: {100 * fraction:.0f}% of its weights"
    if fraction < 0.999:
        note += " (**partially loaded: ComfyUI streams weights, its timings are not comparable**)"
    return note + "."


def load_note(r: dict) -> str:
    """What other processes did to the CPUs during the kept runs, and how many runs were thrown away."""
    other = [x for x in r.get("other_cores_busy") or [] if x is not None]
    if not other:
        return ""
    limit = r.get("max_other_load", 0.2)
    discarded = r.get("discarded_runs") or {}
    note = (f" Other processes on the machine kept up to {max(other):.2f} cores busy during a kept run "
            f"(median over repetitions {statistics.median(other):.2f})")
    if discarded:
        note += (f"; {sum(discarded.values())} run(s) with more than {limit} cores busy elsewhere were "
                 f"discarded and repeated ({', '.join(f'{k} {v}' for k, v in discarded.items())})")
    if max(other) > limit:
        note += ": **the machine was shared, the timings are noisy**"
    return note + "."


def _size_list(sizes) -> str:
    return " → ".join(f"{h}" if h == w else f"{h}x{w}" for h, w in sizes)


def _run_rows(r: dict, mem: bool = True) -> list[str]:
    runs, sizes = r["runs"], r["sizes"]
    steps, final = len(sizes), "x".join(map(str, sizes[-1]))
    gpu = r["device"].startswith("cuda")
    mem_head = ("peak allocated MiB", "Δ over start MiB") if gpu else ("peak RSS MiB", "Δ RSS over start MiB")
    labels = {
        "swd": (f"`SwDSampler` ({_size_list(sizes)})", f"{steps}, growing"),
        "bare": ("bare forwards at the same sizes (ComfyUI `apply_model`, summed)", f"{steps}, growing"),
        "same": (f"`SamplerCustom` euler, same {steps} sigmas, full size", f"{steps} at {final}"),
        "base28": (f"`SamplerCustom` euler, `BasicScheduler` {r.get('baseline_scheduler', 'simple')} "
                   f"{r['baseline_steps']} steps, full size",
                   f"{r['baseline_steps']} at {final}"),
        "diffusers": (family_of(r["case"]).REFERENCE_LABEL, f"{steps}, growing"),
    }
    rows = ["| run | model forwards | median s | min–max s |" + (f" {mem_head[0]} | {mem_head[1]} |" if mem else ""),
            "|---|---|---|---|" + ("---|---|" if mem else "")]
    for k in VARIANTS:
        if k not in runs:
            continue
        x = runs[k]
        rows.append(f"| {labels[k][0]} | {labels[k][1]} | {num(x['median_s'], 3)} | "
                    f"{num(x['min_s'], 3)}–{num(x['max_s'], 3)} |"
                    + (f" {mib(x['peak_bytes'])} | {mib(x['peak_over_start_bytes'])} |" if mem else ""))
    return rows


def _ratio_rows(r: dict) -> list[str]:
    ratios = r["ratios"]
    o, p = ratios["overhead"], ratios["peer"]
    rows = [
        "| ratio | measured (medians) | ratio of minimums | FLOP model | from measured forwards | goal | met |",
        "|---|---|---|---|---|---|---|",
        f"| overhead: `SwDSampler` / bare forwards | {num(o['measured'], 3)} | {num(o['measured_min'], 3)} | 1.000 | "
        f"1.000 | ≤ 1.05 | {_ok(o['met'])} |",
    ]
    for key, label in (("speedup_same", f"same {len(r['sizes'])} sigmas at full size"),
                       ("speedup_base28", f"{r['baseline_steps']}-step baseline")):
        if key in ratios:
            x = ratios[key]
            rows.append(f"| speedup: {label} / `SwDSampler` | {num(x['measured'])} | {num(x['measured_min'])} | "
                        f"{num(x['flops'])} | "
                        f"{num(x['forwards'])} | within 10% of FLOPs ({x['off_by']:+.0%}) | {_ok(x['met'])} |")
    rows.append(f"| peer: diffusers loop / `SwDSampler` | {num(p['measured'])} | {num(p['measured_min'])} | 1.00 | — | "
                f"≥ 1.0 | {_ok(p['met'])} |")
    return rows


def _gpu_lines(r: dict) -> list[str]:
    """Seconds per image and the peak memory of a SwDSampler run (the GPU section's headline)."""
    runs = r["runs"]
    mem = "VRAM" if r["device"].startswith("cuda") else "memory (RSS rise; no GPU here)"
    weights = r["params"] * torch.empty((), dtype=getattr(torch, r["dtype"])).element_size()
    swd = runs["swd"]
    base = (f" ({r['baseline_steps']}-step baseline: {num(runs['base28']['median_s'], 3)} s)"
            if "base28" in runs else "")
    return [
        f"**Seconds per image** (`SwDSampler`, batch {r['batch']}): {num(swd['median_s'], 3)} s{base}. "
        f"**Peak {mem} of a `SwDSampler` run** ≈ ComfyUI's weights {weights / 2 ** 30:.2f} GiB + its working "
        f"memory {swd['peak_over_start_bytes'] / 2 ** 30:.2f} GiB = "
        f"{(weights + swd['peak_over_start_bytes']) / 2 ** 30:.2f} GiB (the table's absolute peaks also "
        f"hold the diffusers copy).",
        "",
    ]


def _sdpa_lines(r: dict) -> list[str]:
    """The second pass with ComfyUI on PyTorch SDPA, the kernel diffusers uses (when there was one)."""
    sdpa = r.get("sdpa_pass")
    if not sdpa:
        return []
    return [
        f"**Same attention kernel as diffusers**: ComfyUI picks `{r['comfy_attention']}` here by default; a "
        f"second process with ComfyUI's `--use-pytorch-cross-attention` (`{sdpa['comfy_attention']}`, the "
        f"kernel diffusers uses and ComfyUI's default on NVIDIA) timed the scale-wise runs again "
        f"(median of {sdpa['reps']} after {sdpa['warmup']} warm-up round(s)." + load_note(sdpa) + ")",
        "",
        *_run_rows(sdpa, mem=False),
        "",
        *_ratio_rows(sdpa),
        "",
    ]


def _schedule_values(r: dict) -> str:
    """The schedule's values: its sigmas, or (a family whose presets are not noise levels: SDXL's DDPM
    times) the values as written and ComfyUI's sigmas for them."""
    label = getattr(family_of(r["case"]), "SCHEDULE_VALUES", None)
    values = ", ".join(f"{s:g}" for s in r["sigmas"])
    if label is None or "comfy_sigmas" not in r:
        return f"sigmas {values}"
    return f"{label} {values} (ComfyUI sigmas {', '.join(f'{s:.4g}' for s in r['comfy_sigmas'])})"


def render_case(r: dict, mode: str) -> str:
    ratios, sizes = r["ratios"], r["sizes"]
    steps = len(sizes)
    final = "x".join(map(str, sizes[-1]))
    px = "x".join(str(v * 8) for v in sizes[-1])
    lines = [
        f"### {r['case']['title']}: {px} px",
        "",
        f"- Model: {r['params'] / 1e6:.1f} M parameters, {r['dtype']} on `{r['device']}`; "
        f"{family_of(r['case']).describe(r['case']['config'])}. " + (r["case"]["note"] or ""),
        f"- Schedule: \"{r['preset']}\", {steps} steps, latent {_size_list(sizes)} (final {final} = {px} px), "
        f"{_schedule_values(r)}.",
        f"- Conditioning: batch {r['batch']}, {r['text_tokens']} text tokens, cfg 1.0 (one forward per step), "
        f"same random context/pooled tensors in both stacks; no LoRA (ComfyUI merges a LoRA into the weights, "
        f"so it does not change the per-step cost).",
        f"- Attention: ComfyUI `{r['comfy_attention']}`, diffusers `{r['diffusers_attention']}`. "
        f"Memory: {r['memory_method']}." + _loaded_note(r.get("comfy_loaded_fraction")),
        f"- Repetitions: median of {r['reps']} after {r['warmup']} warm-up round(s), runs interleaved."
        + load_note(r),
        "",
        *_run_rows(r),
        "",
        *_ratio_rows(r),
        "",
    ]
    notes = []
    if "stock_overhead_same" in ratios and "stock_overhead_base28" in ratios:
        notes.append(f"Stock ComfyUI's own overhead over the same bare forward: `SamplerCustom` {steps} steps "
                     f"{num(ratios['stock_overhead_same']['measured'], 3)}, {r['baseline_steps']} steps "
                     f"{num(ratios['stock_overhead_base28']['measured'], 3)}.")
    notes.append(f"SwD's final latent vs the diffusers loop's (same weights, seed and noise stream): max |Δ| = "
                 f"{r['swd_vs_diffusers_max_abs']:.2e}.")
    lines += [" ".join(notes), ""]
    if mode == "gpu":
        lines += _gpu_lines(r)
    lines += _sdpa_lines(r)
    lines += [
        "| step | latent | tokens (image + text) | sigma | GFLOP | bare forward median ms | GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for st in r["per_step"]:
        lines.append(f"| {st['step']} | {st['latent'][0]}x{st['latent'][1]} | {st['image_tokens']} + "
                     f"{st['text_tokens']} | {st['sigma']:g} | {st['gflop']:.2f} | {st['median_s'] * 1e3:.1f} | "
                     f"{st['gflops_per_s']:.0f} |")
    tr = r["token_ratios"]
    lines += [
        "",
        f"FLOP model terms for this schedule: image tokens alone {tr['image_tokens_linear']:.2f}x, attention on "
        f"image tokens alone {tr['image_tokens_attention']:.2f}x; with the {r['text_tokens']} text tokens: "
        f"linear {tr['with_text_linear']:.2f}x, attention {tr['with_text_attention']:.2f}x; attention is "
        f"{r['attention_share_final']:.0%} of a full-size forward's FLOPs. "
        f"FLOP model read from ComfyUI's module = from the config: {_ok(r['flop_model_matches_config'])}.",
        "",
    ]
    return "\n".join(lines)


def render_section(mode: str, report: dict, family: str = "sd3") -> str:
    """The section of ``family``'s cases in ``report`` (markers :func:`section_id`)."""
    m, v = report["machine"], report["versions"]
    title = ({"cpu": "CPU", "gpu": "GPU"}[mode] + ("" if family == "sd3" else f": {FAMILIES[family].NAME}")
             + (" (tiny smoke run: not a benchmark)" if report["tiny"] else ""))
    lines = [
        BEGIN.format(section_id(mode, family)),
        f"## {title}",
        "",
        f"Measured {report['date']} with `{(LAUNCHER + ' ' + report['command']).strip()}` "
        f"(it runs `{(RUNS + ' ' + report['command']).strip()}`).",
        "",
        f"- Machine: {m['platform']}; {m['cpu']}; {m['cpus_usable']} usable CPUs ({m['cpus_online']} online), "
        f"torch threads {m['torch_threads']}; {m['ram_gib']:.1f} GiB RAM; GPU: {m['gpu'] or 'none'}"
        + (f" (CUDA {m['cuda']})" if m.get("cuda") else "") + ".",
        f"- Versions: Python {v['python']}, torch {v['torch']}, diffusers {v['diffusers']}, ComfyUI {v['comfyui']}, "
        f"pack {v['pack_commit']}.",
        f"- Wall time of the whole run: {report['wall_s'] / 60:.1f} min.",
        "",
    ]
    for r in report["cases"]:
        if r["case"].get("family", "sd3") == family:
            lines.append(render_case(r, mode))
    lines.append(END.format(section_id(mode, family)))
    return "\n".join(lines)


def predicted_table(family, swd_core) -> str:
    """FLOP-model predictions at 1024x1024 for a family's real architectures (no measurement)."""
    base = baseline_steps(family)
    rows = ["| architecture | schedule | attention share at 1024 px | same sigmas at full size / SwD | "
            f"{base}-step baseline / SwD |", "|---|---|---|---|---|"]
    for case in family.CASES["gpu"]:
        fm = family.flop_model(case.config)
        sizes = swd_core.latent_sizes(swd_core.PRESETS[case.preset].scales, 128, 128, fm.patch)
        t = family.TEXT_TOKENS
        rows.append(f"| {case.title} | {case.preset} | {fm.attention_share((128, 128), t):.0%} | "
                    f"{predicted_speedup(fm, sizes, len(sizes), t):.2f} | "
                    f"{predicted_speedup(fm, sizes, base, t):.2f} |")
    return "\n".join(rows)


def pending_section(section: str, swd_core) -> str:
    """A section with no measurement yet: how to make it (and, for a GPU section, the FLOP model's predictions)."""
    mode, _, name = section.partition("-")
    family = FAMILIES[name or "sd3"]
    rerun = f"{LAUNCHER} --mode {mode}" + (f" --family {name}" if name else "")
    heading = {"cpu": "CPU", "gpu": "GPU"}[mode] + (f": {family.NAME}" if name else "")
    if mode == "gpu":
        archs = " and ".join(c.title.removesuffix(" (random weights)") for c in family.CASES["gpu"])
        if not name:  # SD3's sentence as it always read
            archs = "SD3.5 Large and Medium architectures"
        body = (
            f"## {heading}\n\nPending: no GPU was available when this file was produced. Rerun with "
            f"`{rerun}` on a CUDA machine ({archs}, random bf16 weights, 1024x1024: seconds per image and "
            "peak VRAM). The code path is checked on CPU by `--mode gpu --tiny` and `tests/tools/test_bench.py`.\n"
        )
        body += (f"\nWhat the FLOP model predicts there ({family.NAME} text tokens: {family.TEXT_TOKENS}):\n\n"
                 + predicted_table(family, swd_core) + "\n")
    else:
        body = f"## {heading}\n\nPending: rerun with `{rerun}`.\n"
    return f"{BEGIN.format(section)}\n{body}{END.format(section)}"


def prose() -> str:
    """BENCHMARKS.md's fixed text: everything above its first section marker."""
    text = BENCHMARKS.read_text()
    first = text.find("<!-- bench:")
    if first < 0:
        raise RuntimeError(f"{BENCHMARKS} has no <!-- bench:...:begin --> section marker")
    return text[:first]


def update_benchmarks(path: Path, mode: str, section: str, swd_core) -> str:
    """Rewrite ``path``: BENCHMARKS.md's prose, ``section`` (marker name ``mode``: a :data:`SECTIONS`
    entry), the other sections kept (or pending)."""
    head = prose()
    old = path.read_text() if path.exists() else ""
    sections = {}
    for m in SECTIONS:
        b, e = BEGIN.format(m), END.format(m)
        if m == mode:
            sections[m] = section
        elif b in old and e in old:
            sections[m] = old[old.index(b):old.index(e) + len(e)]
        else:
            sections[m] = pending_section(m, swd_core)
    # sections other benches write (``bench compile``: ``compile-cpu-sd3``, ...) are kept as they are, after these
    for m in re.findall(r"<!-- bench:([\w-]+):begin -->", old):
        if m not in sections and END.format(m) in old:
            sections[m] = old[old.index(BEGIN.format(m)):old.index(END.format(m)) + len(END.format(m))]
    text = head + "\n\n".join(sections.values()) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
