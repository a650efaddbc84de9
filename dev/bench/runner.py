"""Timing one case: build the models, the five kinds of run, interleaved repetitions, the result dict."""
from __future__ import annotations

import datetime
import gc
import time
from dataclasses import asdict, replace

import torch

from harness.paths import ROOT

from .cases import REQUIRED_VARIANTS, VARIANTS, baseline_scheduler, cases_for, family_of
from .cases import baseline_steps as family_baseline_steps
from .family import Case
from .flops import predicted_speedup, token_power_ratio
from .measure import CpuLoad, PeakMemory, Stat, machine_info, sync, versions


class Interleaved:
    """Kinds of run timed in turn, one of each per repetition, on a possibly shared machine: the loop every
    bench here shares (`CaseBench`; ``bench gguf``'s ``GGUFBench``).

    A subclass sets ``device``, ``variants`` (the kinds, in order), ``label`` (the log's tag), ``log``,
    ``max_other_load``, ``max_retries_per_rep`` and ``outputs`` (a dict), and runs a kind in
    :meth:`run_kind` (default: its method ``run_<kind>``, returning when the device is idle).
    """

    def run_kind(self, kind: str):
        return getattr(self, f"run_{kind}")()

    def keep(self, kind: str, out, elapsed: float) -> tuple[float, list | None]:
        """A kept run's time and per-step times (None: none) from its output; default: its wall time, and
        the output kept in ``outputs``."""
        self.outputs[kind] = out
        return elapsed, None

    def measure(self, kind: str, stat: Stat | None) -> float | None:
        """One run of ``kind``; returns the cores other processes kept busy meanwhile (None: unknown)."""
        with PeakMemory(self.device) as mem, CpuLoad() as load, torch.inference_mode():  # as ComfyUI's executor
            sync(self.device)
            t0 = time.perf_counter()
            out = self.run_kind(kind)
            elapsed = time.perf_counter() - t0
        if stat is not None and load.other_cores is not None and load.other_cores > self.max_other_load \
                and self.retries_left > 0:
            self.retries_left -= 1
            self.discarded[kind] = self.discarded.get(kind, 0) + 1
            self.log(f"[{self.label}] {kind}: discarded, other processes kept {load.other_cores:.2f} cores "
                     f"busy (> {self.max_other_load}); again")
            return self.measure(kind, stat)
        self.memory_method = mem.method
        elapsed, steps = self.keep(kind, out, elapsed)
        if stat is not None:
            stat.times.append(elapsed)
            stat.peaks.append(mem.peak)
            stat.starts.append(mem.start)
            if steps is not None:
                stat.steps.append(steps)
        return load.other_cores

    def after_warmup(self) -> None:
        """Called between the warm-up rounds and the timed repetitions."""

    def repeat(self, reps: int, warmup: int) -> dict[str, Stat]:
        """``warmup`` untimed rounds, then ``reps`` timed ones, each kind once per round; sets
        ``other_cores`` (per repetition) and ``discarded`` (per kind)."""
        stats = {k: Stat() for k in self.variants}
        for r in range(warmup):
            for kind in self.variants:
                self.measure(kind, None)
            self.log(f"[{self.label}] warm-up round {r + 1}/{warmup} done")
        self.after_warmup()
        self.other_cores, self.discarded = [], {}
        self.retries_left = self.max_retries_per_rep * reps
        for r in range(reps):
            others = [self.measure(kind, stats[kind]) for kind in self.variants]
            self.other_cores.append(None if None in others else max(others))
            self.log(f"[{self.label}] repetition {r + 1}/{reps}: "
                     + ", ".join(f"{k} {stats[k].times[-1]:.3f}s" for k in self.variants)
                     + ("" if None in others else f" (other processes: up to {max(others):.2f} cores busy)"))
        return stats


class CaseBench(Interleaved):
    """Everything for one model/schedule: setup, the five kinds of run (the loop: `Interleaved`)."""

    def __init__(self, host, case: Case, device: torch.device, dtype: torch.dtype, *, batch: int = 1,
                 seed: int = 0, baseline_steps: int | None = None, text_tokens: int | None = None,
                 variants=VARIANTS, max_other_load: float = 0.2, max_retries_per_rep: int = 0, log=print):
        missing = [v for v in REQUIRED_VARIANTS if v not in variants]
        if missing or any(v not in VARIANTS for v in variants):
            raise ValueError(f"variants must be among {VARIANTS} and include {REQUIRED_VARIANTS}; got {variants}")
        self.family = family_of(case)
        self.variants = tuple(v for v in VARIANTS if v in variants)
        self.max_other_load, self.max_retries_per_rep = max_other_load, max_retries_per_rep
        self.host, self.case, self.device, self.dtype = host, case, device, dtype
        self.batch, self.seed, self.log = batch, seed, log
        self.label = case.key
        self.baseline_steps = family_baseline_steps(self.family) if baseline_steps is None else baseline_steps
        self.text_tokens = self.family.TEXT_TOKENS if text_tokens is None else text_tokens

    def setup(self) -> None:
        import comfy.model_management

        case, host, family = self.case, self.host, self.family
        t0 = time.perf_counter()
        self.transformer, self.patcher = family.build_models(case, self.device, self.dtype, self.seed)
        self.build_s = time.perf_counter() - t0
        self.comfy_device = comfy.model_management.get_torch_device()
        diffusion_model = self.patcher.model.diffusion_model
        self.flop_model = family.flop_model(case.config)
        self.flop_model_matches_comfy = family.flop_model_of_comfy(diffusion_model) == self.flop_model
        self.params = sum(p.numel() for p in self.transformer.parameters())

        self.schedule, self.sigmas = host.node("SwDSchedule").execute(case.preset, "", "").args
        latent = case.pixels // 8
        self.final = (latent, latent)
        self.sizes = [tuple(s) for s in host.swd_core.latent_sizes(self.schedule.scales, latent, latent,
                                                                   self.flop_model.patch)]
        self.baseline_scheduler = baseline_scheduler(family)
        self.sigmas28 = host.node("BasicScheduler").execute(self.patcher, self.baseline_scheduler,
                                                            self.baseline_steps, 1.0).args[0]
        self.euler = host.node("KSamplerSelect").execute("euler").args[0]

        g = torch.Generator().manual_seed(self.seed + 1)
        cond = family.conditioning(self.batch, self.text_tokens, g, image_size=(case.pixels, case.pixels))
        self.cond = cond.comfy
        self.latent = {"samples": torch.zeros(self.batch, family.LATENT_CHANNELS, *self.final)}
        # the bare forwards' and the reference's inputs, made once (their cost is not the model's);
        # the bare forwards get ComfyUI's sigmas (SwDSchedule's SIGMAS: SDXL's DDPM times as its noise levels)
        self.bare_inputs = [
            (torch.randn(self.batch, family.LATENT_CHANNELS, *s, generator=g).to(self.comfy_device),
             torch.full((self.batch,), float(sigma), device=self.comfy_device))
            for s, sigma in zip(self.sizes, self.sigmas.tolist(), strict=False)  # sigmas end with 0
        ]
        self.bare_cond = cond.bare_kwargs(self.comfy_device)
        self.reference_inputs = cond.reference_kwargs(self.device, self.dtype)
        self.outputs = {}

    # ---- the five kinds of run; each returns when the device is idle
    def run_swd(self):
        out = self.host.node("SwDSampler").execute(self.patcher, self.cond, self.cond, self.latent, self.schedule,
                                                   self.seed, 1.0, "bicubic").args[0]["samples"]
        sync(self.device)
        return out

    def run_bare(self):
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])  # already loaded: a no-op after warm-up
        model = self.patcher.model
        times = []
        sync(self.comfy_device)
        for x, sigma in self.bare_inputs:
            t0 = time.perf_counter()
            model.apply_model(x, sigma, **self.bare_cond)
            sync(self.comfy_device)
            times.append(time.perf_counter() - t0)
        return times

    def _sampler_custom(self, sigmas):
        out = self.host.node("SamplerCustom").execute(self.patcher, True, self.seed, 1.0, self.cond, self.cond,
                                                      self.euler, sigmas, self.latent).args[0]["samples"]
        sync(self.device)
        return out

    def run_same(self):
        return self._sampler_custom(self.sigmas)

    def run_base28(self):
        return self._sampler_custom(self.sigmas28)

    def run_diffusers(self):
        latents = self.family.reference_latents(self.transformer, self.schedule, self.sizes, self.reference_inputs,
                                                batch=self.batch, seed=self.seed, device=self.device,
                                                dtype=self.dtype)
        sync(self.device)
        return latents

    def keep(self, kind: str, out, elapsed: float) -> tuple[float, list | None]:
        if kind == "bare":  # the sum of the forwards' own times, and each step's
            return sum(out), out
        return super().keep(kind, out, elapsed)

    def after_warmup(self) -> None:
        # how much of ComfyUI's model sits on its GPU (1.0 = fully loaded, no lowvram weight streaming);
        # on the CPU the weights compute where they are stored: None
        self.comfy_loaded = (self.patcher.loaded_size() / max(1, self.patcher.model_size())
                             if self.comfy_device.type != "cpu" else None)

    def run(self, reps: int, warmup: int) -> dict:
        self.setup()
        return self.result(self.repeat(reps, warmup), reps, warmup)

    def _ratios(self, s: dict, t_steps: list[float]) -> dict:
        fm, steps, t_full = self.flop_model, len(self.sizes), t_steps[-1]
        overhead = s["swd"]["median_s"] / s["bare"]["median_s"]
        ratios = {
            "overhead": {"measured": overhead, "measured_min": s["swd"]["min_s"] / s["bare"]["min_s"],
                         "flops": 1.0, "forwards": 1.0, "goal": "<= 1.05", "met": overhead <= 1.05},
            "peer": {"measured": s["diffusers"]["median_s"] / s["swd"]["median_s"],
                     "measured_min": s["diffusers"]["min_s"] / s["swd"]["min_s"], "flops": 1.0,
                     "goal": ">= 1.0", "met": s["diffusers"]["median_s"] >= s["swd"]["median_s"]},
        }
        for kind, n in (("same", steps), ("base28", len(self.sigmas28) - 1)):
            if kind not in s:
                continue
            ratios[f"stock_overhead_{kind}"] = {"measured": s[kind]["median_s"] / (n * t_full)}
            ratios[f"speedup_{kind}"] = {"measured": s[kind]["median_s"] / s["swd"]["median_s"],
                                         "measured_min": s[kind]["min_s"] / s["swd"]["min_s"],
                                         "flops": predicted_speedup(fm, self.sizes, n, self.text_tokens),
                                         "forwards": n * t_full / sum(t_steps)}
        for key in ("speedup_same", "speedup_base28"):
            if key not in ratios:
                continue
            r = ratios[key]
            r["off_by"] = r["measured"] / r["flops"] - 1
            r["goal"] = "within 10% of FLOPs"
            r["met"] = abs(r["off_by"]) <= 0.10
        return ratios

    def result(self, stats: dict, reps: int, warmup: int) -> dict:
        import comfy.ldm.modules.attention as comfy_attention

        s = {k: v.summary() for k, v in stats.items()}
        fm, t_steps = self.flop_model, s["bare"]["step_median_s"]
        # SwDSampler returns ComfyUI's LATENT (process_latent_out); the diffusers loop model-space latents
        ours = self.patcher.model.process_latent_in(self.outputs["swd"].float())
        theirs = self.outputs["diffusers"].float().cpu()
        diff = (ours.cpu() - theirs).abs().max().item() if ours.shape == theirs.shape else float("nan")
        per_step = []
        for i, (size, sigma, t) in enumerate(zip(self.sizes, self.sigmas.tolist(), t_steps, strict=False)):
            flops = fm.flops(size, self.text_tokens, self.batch)
            per_step.append({"step": i + 1, "latent": list(size), "image_tokens": fm.tokens(size),
                             "text_tokens": self.text_tokens, "sigma": sigma, "gflop": flops / 1e9,
                             "median_s": t, "gflops_per_s": flops / 1e9 / t})
        return {
            "case": asdict(self.case) | {"config": {k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in self.case.config.items()}},
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "params": self.params, "build_s": self.build_s, "batch": self.batch,
            "text_tokens": self.text_tokens, "reps": reps, "warmup": warmup,
            "preset": self.case.preset, "scales": list(self.schedule.scales), "sigmas": list(self.schedule.sigmas),
            "comfy_sigmas": self.sigmas.tolist(),
            "sizes": [list(x) for x in self.sizes], "baseline_steps": len(self.sigmas28) - 1,
            "baseline_scheduler": self.baseline_scheduler,
            "comfy_attention": comfy_attention.optimized_attention.__name__,
            "diffusers_attention": self.family.reference_attention(self.transformer),
            "memory_method": self.memory_method,
            "flop_model": asdict(fm), "flop_model_matches_config": self.flop_model_matches_comfy,
            "attention_share_final": fm.attention_share(self.final, self.text_tokens),
            "token_ratios": {
                "image_tokens_linear": token_power_ratio(self.sizes, 1, tokens=fm.tokens),
                "image_tokens_attention": token_power_ratio(self.sizes, 2, tokens=fm.tokens),
                "with_text_linear": token_power_ratio(self.sizes, 1, text_tokens=self.text_tokens, tokens=fm.tokens),
                "with_text_attention": token_power_ratio(self.sizes, 2, text_tokens=self.text_tokens,
                                                         tokens=fm.tokens),
            },
            "other_cores_busy": self.other_cores, "discarded_runs": self.discarded,
            "max_other_load": self.max_other_load,
            "comfy_loaded_fraction": getattr(self, "comfy_loaded", None),
            "runs": s, "per_step": per_step, "ratios": self._ratios(s, t_steps),
            "swd_vs_diffusers_max_abs": diff,
        }

    def close(self) -> None:
        import comfy.model_management

        for name in ("transformer", "patcher", "outputs", "bare_inputs", "reference_inputs"):
            self.__dict__.pop(name, None)
        comfy.model_management.unload_all_models()
        gc.collect()
        comfy.model_management.soft_empty_cache(True)


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def run_cases(host, mode: str, tiny: bool, *, reps: int, warmup: int, cases=None, families=None,
              size: int | None = None, preset: str | None = None, dtype: str | None = None, variants=VARIANTS,
              command: str = "", max_other_load: float = 0.2, retries: int = 0, log=print) -> dict:
    """Run every case of ``mode`` (of ``families``, names; default all) and return the report (a JSON-able dict)."""
    t0 = time.perf_counter()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda") if cuda else torch.device("cpu")
    if mode == "gpu" and not cuda and not tiny:
        raise SystemExit("--mode gpu needs a CUDA device; `--mode gpu --tiny` runs the same code path on CPU")
    report = {"mode": mode, "tiny": tiny, "command": command,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine_info(), "versions": versions(ROOT), "cases": []}
    for case in cases or cases_for(mode, tiny, families):
        if size or preset:
            case = replace(case, preset=preset or case.preset, pixels=size or case.pixels)
        case_dtype = (_dtype(dtype) if dtype else _dtype(case.gpu_dtype) if (mode == "gpu" and cuda)
                      else torch.float32)
        log(f"[{case.key}] {case.title}: {case.pixels}x{case.pixels} px, {case_dtype}, {device}")
        bench = CaseBench(host, case, device, case_dtype, variants=variants, max_other_load=max_other_load,
                          max_retries_per_rep=retries, log=log)
        try:
            report["cases"].append(bench.run(reps, warmup))
        finally:
            bench.close()
    report["wall_s"] = time.perf_counter() - t0
    return report
