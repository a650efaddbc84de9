#!/usr/bin/env python3
"""SwD benchmarks: the sampler's overhead, SwD's speedup, the diffusers reference, peak memory.

    python3 scripts/dev.py bench                       # CPU (default): SD3-shaped random MMDiT, 512x512
    python3 scripts/dev.py bench --mode gpu            # GPU: SD3.5 Large + Medium architectures, bf16, 1024x1024
    python3 scripts/dev.py bench --mode gpu --tiny     # the GPU code path with tiny models (runs on CPU too)

One run on one machine; every figure is a median over ``--reps`` repetitions (default 5)
after ``--warmup`` untimed rounds (default 1). The runs are interleaved (one of each kind
per repetition) so that a slow phase of the machine hits them all alike. The results go
to ``BENCHMARKS.md`` at the repository root (``--out``); each mode rewrites only its own
section. ``--tiny`` runs are smoke runs and go to ``bench/results/BENCHMARKS-tiny.md``.

What is timed, all in one process with the same weights and conditioning:

* ``swd``: the pack's ``SwDSampler`` node (ComfyUI's CFGGuider, model management, callbacks).
* ``bare``: the bare forwards of the same ComfyUI model (``model.model.apply_model``) at each
  of SwD's step sizes, one per step, summed: the floor for ``swd``.
* ``same``: stock ``SamplerCustom`` + ``KSamplerSelect("euler")`` with SwD's sigmas, every
  step at the final size.
* ``base28``: stock ``SamplerCustom`` + euler + ``BasicScheduler("simple", 28)`` at the final size.
* ``diffusers``: a bare diffusers loop, ``SD3Transformer2DModel`` (same weights) +
  ``FlowMatchLCMScheduler(shift=1.0, scale_factors=..., upscale_mode="bicubic")``.

Where ComfyUI's attention is not PyTorch SDPA (its CPU default is sub-quadratic chunked
attention; diffusers uses SDPA), a second process repeats ``swd``, ``bare`` and ``diffusers``
with ComfyUI's ``--use-pytorch-cross-attention`` so that the peer ratio is also measured on one
kernel (``--sdpa-pass off`` skips it). On a shared machine, a timed run during which other
processes kept more than ``--max-other-load`` cores busy (from /proc/stat) is discarded and
repeated (``--retries`` per repetition); the report states how busy the machine was.

ComfyUI is driven in-process by ``tests/lib/comfy_host.py`` (the loader the tests use):
ComfyUI's root first on ``sys.path`` (never the repository root: the pack's ``nodes/`` would
shadow ComfyUI's), ``--cpu`` without CUDA, ``.host/extra_model_paths.yaml`` before
``import nodes``, then the pack loaded with ``nodes.load_custom_node`` the way ComfyUI loads
any custom node folder.

The model is built with random weights (diffusers ``SD3Transformer2DModel.from_config``),
its state dict (diffusers key names) is loaded into ComfyUI with
``comfy.sd.load_diffusion_model_state_dict``: both stacks run the same numbers, and random
weights cost the same time as trained ones.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lib"))
from comfy_host import ComfyHost  # noqa: E402  (the one in-process ComfyUI loader, shared with the tests)

ROOT = Path(__file__).resolve().parent.parent
HOST_DIR = ROOT / ".host"
DEFAULT_OUT = ROOT / "BENCHMARKS.md"
RESULTS_DIR = ROOT / "bench" / "results"

#: Text tokens in SD3's joint attention as ComfyUI encodes a prompt: CLIP-L and CLIP-G side by
#: side in the feature dimension (77 tokens, zero-padded to 4096 features) followed by T5-XXL
#: (77 tokens minimum; longer prompts add more): 77 + 77 = 154 (comfy/text_encoders/sd3_clip.py).
#: diffusers' StableDiffusion3Pipeline pads T5 to max_sequence_length=256: 77 + 256 = 333.
TEXT_TOKENS = 154
BASELINE_STEPS = 28
LATENT_CHANNELS = 16

VARIANTS = ("swd", "bare", "same", "base28", "diffusers")
REQUIRED_VARIANTS = ("swd", "bare", "diffusers")  # the full-size baselines may be left out (--variants)


# --------------------------------------------------------------------------- architectures

def sd3_config(depth: int, dual_attention_layers=(), pos_embed_max_size: int = 192) -> dict:
    """A diffusers ``SD3Transformer2DModel`` config with SD3.5's layout.

    ComfyUI's MMDiT ties hidden size and head count to the block count (head dim 64,
    ``hidden = 64 * heads``, ``heads = depth``), as in every released SD3/SD3.5: so do we.
    """
    return dict(
        sample_size=128, patch_size=2, in_channels=LATENT_CHANNELS, num_layers=depth,
        attention_head_dim=64, num_attention_heads=depth, joint_attention_dim=4096,
        caption_projection_dim=64 * depth, pooled_projection_dim=2048, out_channels=LATENT_CHANNELS,
        pos_embed_max_size=pos_embed_max_size, qk_norm="rms_norm",
        dual_attention_layers=tuple(dual_attention_layers),
    )


#: stabilityai/stable-diffusion-3.5-large transformer: depth 38, hidden 2432, 38 heads.
SD35_LARGE = sd3_config(38, pos_embed_max_size=192)
#: stabilityai/stable-diffusion-3.5-medium transformer (MMDiT-X): depth 24, hidden 1536,
#: extra image self-attention in blocks 0..12.
SD35_MEDIUM = sd3_config(24, dual_attention_layers=range(13), pos_embed_max_size=384)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    config: dict
    preset: str
    pixels: int  # final image side in pixels (latent = pixels / 8)
    gpu_dtype: str = "bfloat16"  # dtype on CUDA; CPU runs use float32
    note: str = ""


CPU_CASE = Case(
    "cpu-mmdit", "SD3-shaped MMDiT, depth 6, hidden 384 (6 heads), random weights",
    sd3_config(6), "SD3.5 Large, 6 steps", 512,
    note="Sized so that the whole CPU run takes a few minutes on 2 cores; at 512x512 its "
         "attention/linear FLOP mix (attention ~34%) is between SD3.5 Large's (~23%) and "
         "Medium's at 1024x1024.",
)
GPU_CASES = (
    Case("sd35-large", "SD3.5 Large architecture (random weights)", SD35_LARGE, "SD3.5 Large, 6 steps", 1024),
    Case("sd35-medium", "SD3.5 Medium architecture (MMDiT-X, random weights)", SD35_MEDIUM,
         "SD3.5 Medium, 6 steps", 1024),
)
TINY_CPU_CASE = Case("tiny", "tiny SD3-shaped MMDiT, depth 2, hidden 128", sd3_config(2),
                     "SD3.5 Large, 6 steps", 256)
TINY_GPU_CASES = (
    Case("tiny-large", "tiny SD3.5-Large-shaped MMDiT, depth 2, hidden 128", sd3_config(2),
         "SD3.5 Large, 6 steps", 256),
    Case("tiny-medium", "tiny SD3.5-Medium-shaped MMDiT-X, depth 2, hidden 128, dual attention in block 0",
         sd3_config(2, dual_attention_layers=(0,), pos_embed_max_size=64), "SD3.5 Medium, 6 steps", 256),
)


def cases_for(mode: str, tiny: bool) -> tuple[Case, ...]:
    if mode == "cpu":
        return (TINY_CPU_CASE,) if tiny else (CPU_CASE,)
    return TINY_GPU_CASES if tiny else GPU_CASES


# --------------------------------------------------------------------------- FLOP model

def image_tokens(h: int, w: int, patch: int = 2) -> int:
    """Image tokens of a ``h x w`` latent: ``(h/2) * (w/2)`` for SD3 (ComfyUI pads to the patch)."""
    return math.ceil(h / patch) * math.ceil(w / patch)


@dataclass(frozen=True)
class FlopModel:
    """Multiply-adds of one MMDiT forward (one sample) for ``N`` image and ``T`` text tokens.

    ``macs(N, T) = image_token_macs*N + text_token_macs*T + sample_macs
    + joint_attention_width*(N+T)^2 + image_attention_width*N^2``

    Linear layers grow with their stream's tokens; joint attention (QK^T and AV, ``2 (N+T)^2 d``
    per block) with the square of all tokens; MMDiT-X's extra image self-attention with
    ``N^2``. Norms, activations and softmax are left out (elementwise, a few % of the time).
    FLOPs are ``2 * macs``.
    """

    image_token_macs: int
    text_token_macs: int
    sample_macs: int
    joint_attention_width: int
    image_attention_width: int
    patch: int = 2

    def macs(self, n: int, t: int) -> int:
        return (self.image_token_macs * n + self.text_token_macs * t + self.sample_macs
                + self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2)

    def flops(self, size: tuple[int, int], text_tokens: int = TEXT_TOKENS, batch: int = 1) -> int:
        return 2 * batch * self.macs(image_tokens(*size, self.patch), text_tokens)

    def attention_share(self, size, text_tokens: int = TEXT_TOKENS) -> float:
        n, t = image_tokens(*size, self.patch), text_tokens
        attn = self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2
        return attn / self.macs(n, t)

    @classmethod
    def from_config(cls, cfg: dict) -> "FlopModel":
        """From a diffusers ``SD3Transformer2DModel`` config (feed-forward ratio 4, as diffusers builds it)."""
        d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        depth = cfg["num_layers"]
        p = cfg["patch_size"]
        mlp = 4 * d  # diffusers' FeedForward(dim, mult=4)
        dual = {i for i in cfg.get("dual_attention_layers", ()) if 0 <= i < depth}
        block = 4 * d * d + 2 * d * mlp  # qkv + out projection + two MLP layers
        image = p * p * cfg["in_channels"] * d + depth * block + len(dual) * 4 * d * d + d * p * p * cfg["out_channels"]
        text = cfg["joint_attention_dim"] * d + (depth - 1) * block + 3 * d * d  # last block: text qkv only
        sample = (256 * d + d * d) + (cfg["pooled_projection_dim"] * d + d * d)  # timestep and pooled embedders
        for i in range(depth):
            sample += (9 if i in dual else 6) * d * d  # image adaLN
            sample += (2 if i == depth - 1 else 6) * d * d  # text adaLN
        sample += 2 * d * d  # final adaLN
        return cls(image, text, sample, 2 * depth * d, 2 * len(dual) * d, p)

    @classmethod
    def from_mmdit(cls, mmdit) -> "FlopModel":
        """From ComfyUI's MMDiT module itself: every Linear/Conv2d, sorted by the stream it runs on."""
        image = text = sample = 0
        for name, mod in mmdit.named_modules():
            if isinstance(mod, torch.nn.Linear):
                macs = mod.in_features * mod.out_features
            elif isinstance(mod, torch.nn.Conv2d):  # patch embedding: one kernel application per token
                macs = mod.in_channels * mod.out_channels * math.prod(mod.kernel_size) // mod.groups
            else:
                continue
            if name.startswith(("t_embedder.", "y_embedder.")) or ".adaLN_modulation." in name:
                sample += macs
            elif name.startswith(("x_embedder.", "final_layer.")) or ".x_block." in name:
                image += macs
            elif name.startswith("context_embedder") or ".context_block." in name:
                text += macs
            else:
                raise ValueError(f"FlopModel.from_mmdit: do not know which tokens {name!r} runs on")
        joint = image_attn = 0
        for blk in mmdit.joint_blocks:
            joint += 2 * (blk.x_block.attn.qkv.out_features // 3)
            if getattr(blk.x_block, "x_block_self_attn", False):
                image_attn += 2 * (blk.x_block.attn2.qkv.out_features // 3)
        return cls(image, text, sample, joint, image_attn, mmdit.patch_size)


def predicted_speedup(fm: FlopModel, sizes, steps_full: int, text_tokens: int = TEXT_TOKENS) -> float:
    """FLOPs of ``steps_full`` forwards at the final size over the FLOPs of the scale-wise steps."""
    return steps_full * fm.flops(sizes[-1], text_tokens) / sum(fm.flops(s, text_tokens) for s in sizes)


def token_power_ratio(sizes, power: int, steps_full: int | None = None, text_tokens: int = 0, patch: int = 2) -> float:
    """The same ratio for a cost of ``(N + text_tokens) ** power``: ``power=1`` linear layers,
    ``power=2`` attention. With ``text_tokens=0`` these are the image-token-only figures."""
    steps_full = len(sizes) if steps_full is None else steps_full
    cost = [(image_tokens(*s, patch) + text_tokens) ** power for s in sizes]
    return steps_full * cost[-1] / sum(cost)


# --------------------------------------------------------------------------- ComfyUI host

# --------------------------------------------------------------------------- measuring

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmHWM") is not None
    except OSError:
        return False


def _malloc_trim() -> None:
    """Hand freed heap back to the OS (glibc) so that each run's RSS starts from what is live."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory of one run: CUDA allocator peak on GPU, process RSS on CPU.

    CPU: the kernel's VmHWM after resetting it (``/proc/self/clear_refs``); where that is not
    available, psutil sampled every millisecond in a thread.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.method = "torch.cuda.max_memory_allocated" if device.type == "cuda" else None
        self._thread = None

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":  # no empty_cache(): the timed run would pay for cudaMalloc again
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        if _reset_peak_rss():
            self.method = "VmHWM (peak RSS, reset via /proc/self/clear_refs)"
            self.start = _proc_status_kib("VmRSS") * 1024
        else:
            import psutil

            proc = psutil.Process()
            self.method = "psutil RSS sampled every 1 ms"
            self.start = self._sampled_peak = proc.memory_info().rss
            self._stop = threading.Event()

            def sample():
                while not self._stop.is_set():
                    self._sampled_peak = max(self._sampled_peak, proc.memory_info().rss)
                    time.sleep(0.001)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = self._sampled_peak
        else:
            self.peak = _proc_status_kib("VmHWM") * 1024
        return False


class CpuLoad:
    """How busy the machine's CPUs were with *other* processes during a span (Linux /proc/stat).

    ``other_cores``: average number of cores kept busy by everything but this process. On a
    shared machine this is what makes timings noisy; the report prints it.
    """

    @staticmethod
    def _busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system

    def __enter__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy_s(), self._own_s()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy = self._busy_s()
        self.other_cores = (None if busy is None or self.busy0 is None or wall <= 0 else
                            max(0.0, (busy - self.busy0 - (self._own_s() - self.own0)) / wall))
        return False


@dataclass
class Stat:
    times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    steps: list[list[float]] = field(default_factory=list)  # bare: per-step times of each repetition

    def summary(self) -> dict:
        out = {"median_s": statistics.median(self.times), "min_s": min(self.times), "max_s": max(self.times),
               "times_s": self.times, "peak_bytes": max(self.peaks),
               "peak_over_start_bytes": max(p - s for p, s in zip(self.peaks, self.starts))}
        if self.steps:
            out["step_median_s"] = [statistics.median(col) for col in zip(*self.steps)]
        return out


# --------------------------------------------------------------------------- one case

def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def build_models(case: Case, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Random ``SD3Transformer2DModel`` on ``device`` and the same weights in ComfyUI (a ModelPatcher)."""
    import comfy.sd
    from diffusers import SD3Transformer2DModel

    old = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if dtype.is_floating_point:
                torch.set_default_dtype(dtype)  # initialise in the target dtype: no fp32 copy of 8B weights
            with device:
                transformer = SD3Transformer2DModel.from_config(case.config)
        finally:
            torch.set_default_dtype(old)
    transformer = transformer.to(device=device, dtype=dtype).eval().requires_grad_(False)
    # diffusers key names; ComfyUI converts them. Copies: ComfyUI's converter writes some converted
    # weights (adaLN scale/shift swap) back into the tensors it is given (0.3.75,
    # model_detection.convert_diffusers_mmdit: `w = weight; w[:] = fun(weight)`), which would change
    # the diffusers model in place. On the CPU, so that the GPU holds no third copy.
    sd = {k: v.to("cpu", copy=True) for k, v in transformer.state_dict().items()}
    patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    del sd
    if patcher is None:
        raise RuntimeError(f"ComfyUI did not recognise the {case.key} state dict as a diffusion model")
    return transformer, patcher


class CaseBench:
    """Everything for one model/schedule: setup, the five kinds of run, the interleaved loop."""

    def __init__(self, host, case: Case, device: torch.device, dtype: torch.dtype, *, batch: int = 1,
                 seed: int = 0, baseline_steps: int = BASELINE_STEPS, text_tokens: int = TEXT_TOKENS,
                 variants=VARIANTS, max_other_load: float = 0.2, max_retries_per_rep: int = 0, log=print):
        missing = [v for v in REQUIRED_VARIANTS if v not in variants]
        if missing or any(v not in VARIANTS for v in variants):
            raise ValueError(f"variants must be among {VARIANTS} and include {REQUIRED_VARIANTS}; got {variants}")
        self.variants = tuple(v for v in VARIANTS if v in variants)
        self.max_other_load, self.max_retries_per_rep = max_other_load, max_retries_per_rep
        self.host, self.case, self.device, self.dtype = host, case, device, dtype
        self.batch, self.seed, self.baseline_steps, self.text_tokens, self.log = (
            batch, seed, baseline_steps, text_tokens, log)

    def setup(self) -> None:
        import comfy.model_management

        case, host = self.case, self.host
        t0 = time.perf_counter()
        self.transformer, self.patcher = build_models(case, self.device, self.dtype, self.seed)
        self.build_s = time.perf_counter() - t0
        self.comfy_device = comfy.model_management.get_torch_device()
        mmdit = self.patcher.model.diffusion_model
        self.flop_model = FlopModel.from_mmdit(mmdit)
        self.flop_model_config = FlopModel.from_config(case.config)
        self.params = sum(p.numel() for p in self.transformer.parameters())

        self.schedule, self.sigmas = host.node("SwDSchedule").execute(case.preset, "", "").args
        latent = case.pixels // 8
        self.final = (latent, latent)
        self.sizes = [tuple(s) for s in host.swd_core.latent_sizes(self.schedule.scales, latent, latent, mmdit.patch_size)]
        self.sigmas28 = host.node("BasicScheduler").execute(self.patcher, "simple", self.baseline_steps, 1.0).args[0]
        self.euler = host.node("KSamplerSelect").execute("euler").args[0]

        g = torch.Generator().manual_seed(self.seed + 1)
        self.context = torch.randn(self.batch, self.text_tokens, 4096, generator=g)
        self.pooled = torch.randn(self.batch, 2048, generator=g)
        self.cond = [[self.context, {"pooled_output": self.pooled}]]
        self.latent = {"samples": torch.zeros(self.batch, LATENT_CHANNELS, *self.final)}
        # the bare forwards' inputs, made once (their cost is not the model's)
        self.bare_inputs = [
            (torch.randn(self.batch, LATENT_CHANNELS, *s, generator=g).to(self.comfy_device),
             torch.full((self.batch,), float(sigma), device=self.comfy_device))
            for s, sigma in zip(self.sizes, self.schedule.sigmas)
        ]
        self.bare_cond = dict(c_crossattn=self.context.to(self.comfy_device), y=self.pooled.to(self.comfy_device))
        self.ctx_dev = self.context.to(self.device, self.dtype)
        self.pooled_dev = self.pooled.to(self.device, self.dtype)
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
        from diffusers import FlowMatchLCMScheduler
        from diffusers.utils.torch_utils import randn_tensor

        first = self.sizes[0][0]
        scheduler = FlowMatchLCMScheduler(shift=1.0, scale_factors=[s[0] / first for s in self.sizes[1:]],
                                          upscale_mode="bicubic")
        scheduler.set_timesteps(sigmas=list(self.schedule.sigmas[:-1]), device=self.device)
        generator = torch.Generator().manual_seed(self.seed)
        latents = randn_tensor((self.batch, LATENT_CHANNELS, *self.sizes[0]), generator=generator,
                               device=self.device, dtype=self.dtype)
        for t in scheduler.timesteps:
            v = self.transformer(hidden_states=latents, timestep=t.expand(self.batch),
                                 encoder_hidden_states=self.ctx_dev, pooled_projections=self.pooled_dev,
                                 return_dict=False)[0]
            latents = scheduler.step(v, t, latents, generator=generator, return_dict=False)[0]
        sync(self.device)
        return latents

    def measure(self, kind: str, stat: Stat | None) -> float | None:
        """One run of ``kind``; returns the cores other processes kept busy meanwhile (None: unknown)."""
        fn = getattr(self, f"run_{kind}")
        with PeakMemory(self.device) as mem, CpuLoad() as load, torch.inference_mode():  # as ComfyUI's executor
            sync(self.device)
            t0 = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t0
        if stat is not None and load.other_cores is not None and load.other_cores > self.max_other_load \
                and self.retries_left > 0:
            self.retries_left -= 1
            self.discarded[kind] = self.discarded.get(kind, 0) + 1
            self.log(f"[{self.case.key}] {kind}: discarded, other processes kept {load.other_cores:.2f} cores "
                     f"busy (> {self.max_other_load}); again")
            return self.measure(kind, stat)
        self.memory_method = mem.method
        if kind == "bare":
            elapsed = sum(out)
        else:
            self.outputs[kind] = out
        if stat is not None:
            stat.times.append(elapsed)
            stat.peaks.append(mem.peak)
            stat.starts.append(mem.start)
            if kind == "bare":
                stat.steps.append(out)
        return load.other_cores

    def run(self, reps: int, warmup: int) -> dict:
        self.setup()
        stats = {k: Stat() for k in self.variants}
        for r in range(warmup):
            for kind in self.variants:
                self.measure(kind, None)
            self.log(f"[{self.case.key}] warm-up round {r + 1}/{warmup} done")
        # how much of ComfyUI's model sits on its GPU (1.0 = fully loaded, no lowvram weight streaming);
        # on the CPU the weights compute where they are stored: None
        self.comfy_loaded = (self.patcher.loaded_size() / max(1, self.patcher.model_size())
                             if self.comfy_device.type != "cpu" else None)
        self.other_cores, self.discarded = [], {}
        self.retries_left = self.max_retries_per_rep * reps
        for r in range(reps):
            others = [self.measure(kind, stats[kind]) for kind in self.variants]
            self.other_cores.append(None if None in others else max(others))
            self.log(f"[{self.case.key}] repetition {r + 1}/{reps}: "
                     + ", ".join(f"{k} {stats[k].times[-1]:.3f}s" for k in self.variants)
                     + ("" if None in others else f" (other processes: up to {max(others):.2f} cores busy)"))
        return self.result(stats, reps, warmup)

    def result(self, stats: dict, reps: int, warmup: int) -> dict:
        import comfy.ldm.modules.attention as comfy_attention

        s = {k: v.summary() for k, v in stats.items()}
        fm, steps = self.flop_model, len(self.sizes)
        t_steps = s["bare"]["step_median_s"]
        t_full = t_steps[-1]
        # SwDSampler returns ComfyUI's LATENT (process_latent_out); the diffusers loop model-space latents
        ours = self.patcher.model.process_latent_in(self.outputs["swd"].float())
        theirs = self.outputs["diffusers"].float().cpu()
        diff = (ours.cpu() - theirs).abs().max().item() if ours.shape == theirs.shape else float("nan")
        per_step = []
        for i, (size, sigma, t) in enumerate(zip(self.sizes, self.schedule.sigmas, t_steps)):
            flops = fm.flops(size, self.text_tokens, self.batch)
            per_step.append({"step": i + 1, "latent": list(size), "image_tokens": image_tokens(*size, fm.patch),
                             "text_tokens": self.text_tokens, "sigma": sigma, "gflop": flops / 1e9,
                             "median_s": t, "gflops_per_s": flops / 1e9 / t})
        ratios = {
            "overhead": {"measured": s["swd"]["median_s"] / s["bare"]["median_s"],
                         "measured_min": s["swd"]["min_s"] / s["bare"]["min_s"], "flops": 1.0,
                         "forwards": 1.0, "goal": "<= 1.05", "met": s["swd"]["median_s"] / s["bare"]["median_s"] <= 1.05},
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
        return {
            "case": asdict(self.case) | {"config": {k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in self.case.config.items()}},
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "params": self.params, "build_s": self.build_s, "batch": self.batch,
            "text_tokens": self.text_tokens, "reps": reps, "warmup": warmup,
            "preset": self.case.preset, "scales": list(self.schedule.scales), "sigmas": list(self.schedule.sigmas),
            "sizes": [list(x) for x in self.sizes], "baseline_steps": len(self.sigmas28) - 1,
            "comfy_attention": comfy_attention.optimized_attention.__name__,
            "diffusers_attention": type(self.transformer.transformer_blocks[0].attn.processor).__name__,
            "memory_method": self.memory_method,
            "flop_model": asdict(fm), "flop_model_matches_config": fm == self.flop_model_config,
            "attention_share_final": fm.attention_share(self.final, self.text_tokens),
            "token_ratios": {
                "image_tokens_linear": token_power_ratio(self.sizes, 1),
                "image_tokens_attention": token_power_ratio(self.sizes, 2),
                "with_text_linear": token_power_ratio(self.sizes, 1, text_tokens=self.text_tokens),
                "with_text_attention": token_power_ratio(self.sizes, 2, text_tokens=self.text_tokens),
            },
            "other_cores_busy": self.other_cores, "discarded_runs": self.discarded,
            "max_other_load": self.max_other_load,
            "comfy_loaded_fraction": getattr(self, "comfy_loaded", None),
            "runs": s, "per_step": per_step, "ratios": ratios, "swd_vs_diffusers_max_abs": diff,
        }

    def close(self) -> None:
        import comfy.model_management

        for name in ("transformer", "patcher", "outputs", "bare_inputs"):
            self.__dict__.pop(name, None)
        comfy.model_management.unload_all_models()
        gc.collect()
        comfy.model_management.soft_empty_cache(True)


# --------------------------------------------------------------------------- machine, versions

def _git(*args) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    import psutil

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"platform": platform.platform(), "cpu": cpu, "cpus_online": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "ram_gib": psutil.virtual_memory().total / 2 ** 30,
            "gpu": None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{p.name}, {p.total_memory / 2 ** 30:.0f} GiB"
        info["cuda"] = torch.version.cuda
    return info


def versions() -> dict:
    import diffusers

    comfy_version = "?"
    with contextlib.suppress(Exception):
        import comfyui_version

        comfy_version = comfyui_version.__version__
    commit = _git("rev-parse", "--short", "HEAD") or "?"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "comfyui": comfy_version, "pack_commit": commit + (" + uncommitted changes" if dirty else "")}


# --------------------------------------------------------------------------- report

BEGIN, END = "<!-- bench:{}:begin -->", "<!-- bench:{}:end -->"


def _f(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"


def _mib(b: int) -> str:
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


def _load_note(r: dict) -> str:
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


def _run_rows(r: dict, mem: bool = True) -> list[str]:
    runs, sizes = r["runs"], r["sizes"]
    steps, final = len(sizes), "x".join(map(str, sizes[-1]))
    size_list = " → ".join(f"{h}" if h == w else f"{h}x{w}" for h, w in sizes)
    gpu = r["device"].startswith("cuda")
    mem_head = ("peak allocated MiB", "Δ over start MiB") if gpu else ("peak RSS MiB", "Δ RSS over start MiB")
    labels = {
        "swd": (f"`SwDSampler` ({size_list})", f"{steps}, growing"),
        "bare": ("bare forwards at the same sizes (ComfyUI `apply_model`, summed)", f"{steps}, growing"),
        "same": (f"`SamplerCustom` euler, same {steps} sigmas, full size", f"{steps} at {final}"),
        "base28": (f"`SamplerCustom` euler, `BasicScheduler` simple {r['baseline_steps']} steps, full size",
                   f"{r['baseline_steps']} at {final}"),
        "diffusers": ("diffusers loop: `SD3Transformer2DModel` + `FlowMatchLCMScheduler`", f"{steps}, growing"),
    }
    rows = ["| run | model forwards | median s | min–max s |" + (f" {mem_head[0]} | {mem_head[1]} |" if mem else ""),
            "|---|---|---|---|" + ("---|---|" if mem else "")]
    for k in VARIANTS:
        if k not in runs:
            continue
        x = runs[k]
        rows.append(f"| {labels[k][0]} | {labels[k][1]} | {_f(x['median_s'], 3)} | "
                    f"{_f(x['min_s'], 3)}–{_f(x['max_s'], 3)} |"
                    + (f" {_mib(x['peak_bytes'])} | {_mib(x['peak_over_start_bytes'])} |" if mem else ""))
    return rows


def _ratio_rows(r: dict) -> list[str]:
    ratios = r["ratios"]
    o, p = ratios["overhead"], ratios["peer"]
    rows = [
        "| ratio | measured (medians) | ratio of minimums | FLOP model | from measured forwards | goal | met |",
        "|---|---|---|---|---|---|---|",
        f"| overhead: `SwDSampler` / bare forwards | {_f(o['measured'], 3)} | {_f(o['measured_min'], 3)} | 1.000 | "
        f"1.000 | ≤ 1.05 | {_ok(o['met'])} |",
    ]
    for key, label in (("speedup_same", f"same {len(r['sizes'])} sigmas at full size"),
                       ("speedup_base28", f"{r['baseline_steps']}-step baseline")):
        if key in ratios:
            x = ratios[key]
            rows.append(f"| speedup: {label} / `SwDSampler` | {_f(x['measured'])} | {_f(x['measured_min'])} | "
                        f"{_f(x['flops'])} | "
                        f"{_f(x['forwards'])} | within 10% of FLOPs ({x['off_by']:+.0%}) | {_ok(x['met'])} |")
    rows.append(f"| peer: diffusers loop / `SwDSampler` | {_f(p['measured'])} | {_f(p['measured_min'])} | 1.00 | — | "
                f"≥ 1.0 | {_ok(p['met'])} |")
    return rows


def render_case(r: dict, mode: str) -> str:
    runs, ratios, sizes = r["runs"], r["ratios"], r["sizes"]
    steps = len(sizes)
    final = "x".join(map(str, sizes[-1]))
    px = "x".join(str(v * 8) for v in sizes[-1])
    size_list = " → ".join(f"{h}" if h == w else f"{h}x{w}" for h, w in sizes)
    gpu = r["device"].startswith("cuda")
    lines = [
        f"### {r['case']['title']}: {px} px",
        "",
        f"- Model: {r['params'] / 1e6:.1f} M parameters, {r['dtype']} on `{r['device']}`; hidden "
        f"{r['case']['config']['num_attention_heads'] * 64}, depth {r['case']['config']['num_layers']}, "
        f"MLP ratio 4, dual-attention blocks {list(r['case']['config']['dual_attention_layers']) or 'none'}. "
        + (r["case"]["note"] or ""),
        f"- Schedule: \"{r['preset']}\", {steps} steps, latent {size_list} (final {final} = {px} px), "
        f"sigmas {', '.join(f'{s:g}' for s in r['sigmas'])}.",
        f"- Conditioning: batch {r['batch']}, {r['text_tokens']} text tokens, cfg 1.0 (one forward per step), "
        f"same random context/pooled tensors in both stacks; no LoRA (ComfyUI merges a LoRA into the weights, "
        f"so it does not change the per-step cost).",
        f"- Attention: ComfyUI `{r['comfy_attention']}`, diffusers `{r['diffusers_attention']}`. "
        f"Memory: {r['memory_method']}." + _loaded_note(r.get("comfy_loaded_fraction")),
        f"- Repetitions: median of {r['reps']} after {r['warmup']} warm-up round(s), runs interleaved."
        + _load_note(r),
        "",
        *_run_rows(r),
        "",
        *_ratio_rows(r),
        "",
    ]
    notes = []
    if "stock_overhead_same" in ratios and "stock_overhead_base28" in ratios:
        notes.append(f"Stock ComfyUI's own overhead over the same bare forward: `SamplerCustom` {steps} steps "
                     f"{_f(ratios['stock_overhead_same']['measured'], 3)}, {r['baseline_steps']} steps "
                     f"{_f(ratios['stock_overhead_base28']['measured'], 3)}.")
    notes.append(f"SwD's final latent vs the diffusers loop's (same weights, seed and noise stream): max |Δ| = "
                 f"{r['swd_vs_diffusers_max_abs']:.2e}.")
    lines += [" ".join(notes), ""]
    if mode == "gpu":
        mem = "VRAM" if gpu else "memory (RSS rise; no GPU here)"
        weights = r["params"] * torch.empty((), dtype=_dtype(r["dtype"])).element_size()
        swd = runs["swd"]
        base = (f" ({r['baseline_steps']}-step baseline: {_f(runs['base28']['median_s'], 3)} s)"
                if "base28" in runs else "")
        lines += [
            f"**Seconds per image** (`SwDSampler`, batch {r['batch']}): {_f(swd['median_s'], 3)} s{base}. "
            f"**Peak {mem} of a `SwDSampler` run** ≈ ComfyUI's weights {weights / 2 ** 30:.2f} GiB + its working "
            f"memory {swd['peak_over_start_bytes'] / 2 ** 30:.2f} GiB = "
            f"{(weights + swd['peak_over_start_bytes']) / 2 ** 30:.2f} GiB (the table's absolute peaks also "
            f"hold the diffusers copy).",
            "",
        ]
    sdpa = r.get("sdpa_pass")
    if sdpa:
        lines += [
            f"**Same attention kernel as diffusers**: ComfyUI picks `{r['comfy_attention']}` here by default; a "
            f"second process with ComfyUI's `--use-pytorch-cross-attention` (`{sdpa['comfy_attention']}`, the "
            f"kernel diffusers uses and ComfyUI's default on NVIDIA) timed the scale-wise runs again "
            f"(median of {sdpa['reps']} after {sdpa['warmup']} warm-up round(s)."
            + _load_note(sdpa) + ")",
            "",
            *_run_rows(sdpa, mem=False),
            "",
            *_ratio_rows(sdpa),
            "",
        ]
    lines += [
        "| step | latent | tokens (image + text) | sigma | GFLOP | bare forward median ms | GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for st in r["per_step"]:
        lines.append(f"| {st['step']} | {st['latent'][0]}x{st['latent'][1]} | {st['image_tokens']} + {st['text_tokens']} | "
                     f"{st['sigma']:g} | {st['gflop']:.2f} | {st['median_s'] * 1e3:.1f} | {st['gflops_per_s']:.0f} |")
    tr = r["token_ratios"]
    lines += [
        "",
        f"FLOP model terms for this schedule: image tokens alone {tr['image_tokens_linear']:.2f}x, attention on "
        f"image tokens alone {tr['image_tokens_attention']:.2f}x; with the {r['text_tokens']} text tokens: "
        f"linear {tr['with_text_linear']:.2f}x, attention {tr['with_text_attention']:.2f}x; attention is "
        f"{r['attention_share_final']:.0%} of a full-size forward's FLOPs. "
        f"FLOP model read from ComfyUI's module = from the config: {'yes' if r['flop_model_matches_config'] else '**no**'}.",
        "",
    ]
    return "\n".join(lines)


def render_section(mode: str, report: dict) -> str:
    m, v = report["machine"], report["versions"]
    tiny = report["tiny"]
    title = {"cpu": "CPU", "gpu": "GPU"}[mode] + (" (tiny smoke run: not a benchmark)" if tiny else "")
    lines = [
        BEGIN.format(mode),
        f"## {title}",
        "",
        f"Measured {report['date']} with `{('python3 scripts/dev.py bench ' + report['command']).strip()}` "
        f"(it runs `{('.venv/bin/python bench/run.py ' + report['command']).strip()}`).",
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
        lines.append(render_case(r, mode))
    lines.append(END.format(mode))
    return "\n".join(lines)


def predicted_table(swd_core) -> str:
    """FLOP-model predictions at 1024x1024 for the real architectures (no measurement)."""
    rows = ["| architecture | schedule | attention share at 1024 px | same sigmas at full size / SwD | "
            "28-step baseline / SwD |", "|---|---|---|---|---|"]
    for case in GPU_CASES:
        fm = FlopModel.from_config(case.config)
        sched = swd_core.PRESETS[case.preset]
        sizes = swd_core.latent_sizes(sched.scales, 128, 128, 2)
        rows.append(f"| {case.title} | {case.preset} | {fm.attention_share((128, 128)):.0%} | "
                    f"{predicted_speedup(fm, sizes, len(sizes)):.2f} | {predicted_speedup(fm, sizes, 28):.2f} |")
    return "\n".join(rows)


def pending_section(mode: str, swd_core) -> str:
    if mode == "gpu":
        body = (
            "## GPU\n\nPending: no GPU was available when this file was produced. Rerun with "
            "`python3 scripts/dev.py bench --mode gpu` on a CUDA machine (SD3.5 Large and Medium "
            "architectures, random bf16 weights, 1024x1024: seconds per image and peak VRAM). The code "
            "path is checked on CPU by `--mode gpu --tiny` and `tests/test_bench.py`.\n\n"
            "What the FLOP model predicts there (SD3 text tokens: 154):\n\n" + predicted_table(swd_core) + "\n"
        )
    else:
        body = "## CPU\n\nPending: rerun with `python3 scripts/dev.py bench --mode cpu`.\n"
    return f"{BEGIN.format(mode)}\n{body}{END.format(mode)}"


HEADER = """\
# Benchmarks

Written by `bench/run.py`; each mode rewrites only its own section below. Goals are reported,
never asserted (speed is not tested by the test suite).

## How to rerun

    python3 scripts/dev.py bench                  # CPU: SD3-shaped random MMDiT, 512x512, a few minutes on 2 cores
    python3 scripts/dev.py bench --mode gpu       # CUDA: SD3.5 Large and Medium architectures, random bf16 weights, 1024x1024
    python3 scripts/dev.py bench --mode gpu --tiny    # smoke run of the GPU code path with tiny models (CPU is fine);
                                                      # goes to bench/results/BENCHMARKS-tiny.md, not here

Options (`--help`): `--reps N` (default 5, medians), `--warmup N` (default 1), `--size PX`,
`--preset NAME`, `--dtype`, `--variants`, `--pytorch-attention` (ComfyUI's `--use-pytorch-cross-attention`),
`--sdpa-pass auto|off`, `--max-other-load CORES` and `--retries N` (on a shared machine, a run during
which other processes kept more than 0.2 cores busy is thrown away and repeated, up to 4 times per
repetition; the report says how often and how busy the machine was), `--out FILE`, `--json FILE`.
Raw numbers of the last run: `bench/results/<mode>.json` (not committed).

## What is measured

All in one process, same weights (random, built with diffusers `SD3Transformer2DModel.from_config`
and loaded into ComfyUI with `comfy.sd.load_diffusion_model_state_dict`), same conditioning, batch 1,
cfg 1.0; the nodes are the real ones, called in-process (ComfyUI's executor wraps nodes in
`torch.inference_mode()`, so every run here is wrapped in it too). Random weights cost the same time
as trained ones.

1. **Overhead**: `SwDSampler` wall time / the sum of the bare forwards of the same ComfyUI model
   (`model.model.apply_model`, after loading) at each step's latent size and sigma. Goal ≤ 1.05.
2. **Speedup**: stock `SamplerCustom` + `KSamplerSelect("euler")` at the final size with SwD's own
   sigmas, and the usual 28-step baseline (`BasicScheduler` simple, 28 steps), each / `SwDSampler`.
   Beside each: the ratio the **FLOP model** predicts, and the ratio the **measured bare forwards**
   predict (step time at full size x steps / sum of SwD's step times; this isolates sampler overhead
   from how efficiently the hardware runs small latents). Goal: measured within 10% of the FLOP model.
3. **Peer**: the diffusers reference loop (`SD3Transformer2DModel` + `FlowMatchLCMScheduler(shift=1.0,
   scale_factors, upscale_mode="bicubic")`, same seed, same sizes) / `SwDSampler`. Goal ≥ 1.0.
   ComfyUI runs its CPU default attention (`attention_sub_quad`, chunked); diffusers uses PyTorch SDPA.
   So on the CPU a second process repeats `SwDSampler`, the bare forwards and the diffusers loop with
   ComfyUI's `--use-pytorch-cross-attention` (SDPA, ComfyUI's default on NVIDIA): that pair compares the
   two stacks on the same kernel (`--sdpa-pass off` skips it).
4. **Peak memory** of each run: process peak RSS on CPU (kernel VmHWM, reset before each run), and
   `torch.cuda.max_memory_allocated` on GPU; "Δ" is the rise over the run's starting point. Both model
   copies (ComfyUI's and diffusers') stay resident during the whole run, so absolute peaks include both.

**FLOP model** (`bench/run.py: FlopModel`), computed from the module shapes of ComfyUI's MMDiT (and
checked against the diffusers config): per forward, every linear layer costs in x out multiply-adds
per token of its stream (image tokens `(h/2)*(w/2)`, text tokens constant: 154 = 77 CLIP-L/G + 77 T5
as ComfyUI encodes SD3 prompts; diffusers' pipeline would pad T5 to 256, giving 333), joint
attention `2*(image+text)^2*hidden` per block, MMDiT-X's extra image attention `2*image^2*hidden`,
adaLN/embedders once per sample; FLOPs = 2 x multiply-adds; norms and activations are left out.
For the published 6-step schedule at 1024x1024 (latent 32 → 128) image tokens alone give 2.49x
over 6 full-size steps and attention on image tokens alone 3.86x.
"""


def update_benchmarks(path: Path, mode: str, section: str, swd_core) -> str:
    """Rewrite ``path``: the header, this mode's ``section``, the other mode's section kept (or pending)."""
    old = path.read_text() if path.exists() else ""
    sections = {}
    for m in ("cpu", "gpu"):
        b, e = BEGIN.format(m), END.format(m)
        if m == mode:
            sections[m] = section
        elif b in old and e in old:
            sections[m] = old[old.index(b):old.index(e) + len(e)]
        else:
            sections[m] = pending_section(m, swd_core)
    text = HEADER + "\n" + sections["cpu"] + "\n\n" + sections["gpu"] + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def run_cases(host, mode: str, tiny: bool, *, reps: int, warmup: int, cases=None, size: int | None = None,
              preset: str | None = None, dtype: str | None = None, variants=VARIANTS, command: str = "",
              max_other_load: float = 0.2, retries: int = 0, log=print) -> dict:
    """Run every case of ``mode`` and return the report (a JSON-able dict)."""
    t0 = time.perf_counter()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda") if cuda else torch.device("cpu")
    if mode == "gpu" and not cuda and not tiny:
        raise SystemExit("--mode gpu needs a CUDA device; `--mode gpu --tiny` runs the same code path on CPU")
    report = {"mode": mode, "tiny": tiny, "command": command,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine_info(), "versions": versions(), "cases": []}
    for case in cases or cases_for(mode, tiny):
        if size or preset:
            case = Case(case.key, case.title, case.config, preset or case.preset, size or case.pixels,
                        case.gpu_dtype, case.note)
        case_dtype = _dtype(dtype) if dtype else _dtype(case.gpu_dtype) if (mode == "gpu" and cuda) else torch.float32
        log(f"[{case.key}] {case.title}: {case.pixels}x{case.pixels} px, {case_dtype}, {device}")
        bench = CaseBench(host, case, device, case_dtype, variants=variants, max_other_load=max_other_load,
                          max_retries_per_rep=retries, log=log)
        try:
            report["cases"].append(bench.run(reps, warmup))
        finally:
            bench.close()
    report["wall_s"] = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny models: a quick check of the code path")
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
    ap.add_argument("--max-other-load", type=float, default=0.2,
                    help="a timed run during which other processes kept more than this many cores busy is "
                         "discarded and repeated (default 0.2; for shared machines)")
    ap.add_argument("--retries", type=int, default=4,
                    help="discarded runs allowed per repetition, in total over the case (default 4)")
    ap.add_argument("--out", type=Path, help="markdown file (default BENCHMARKS.md; tiny: "
                                             "bench/results/BENCHMARKS-tiny.md; '-': none)")
    ap.add_argument("--json", type=Path, help="raw results (default bench/results/<mode>[-tiny].json)")
    ap.add_argument("--comfyui", type=Path, default=Path(os.environ.get("COMFYUI_PATH", HOST_DIR / "ComfyUI")))
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
    report = run_cases(host, args.mode, args.tiny, reps=args.reps, warmup=args.warmup, size=args.size,
                       preset=args.preset, dtype=args.dtype, variants=variants, command=command,
                       max_other_load=args.max_other_load, retries=args.retries)
    suffix = f"{args.mode}-tiny" if args.tiny else args.mode
    json_path = args.json or RESULTS_DIR / f"{suffix}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if (args.sdpa_pass == "auto" and not args.pytorch_attention
            and any(c["comfy_attention"] != "attention_pytorch" for c in report["cases"])):
        child_json = json_path.with_name(json_path.stem + "-sdpa.json")
        child = [sys.executable, str(Path(__file__).resolve()), "--mode", args.mode, "--reps", str(args.reps),
                 "--warmup", str(args.warmup), "--variants", ",".join(REQUIRED_VARIANTS), "--pytorch-attention",
                 "--sdpa-pass", "off", "--out", "-", "--json", str(child_json), "--comfyui", str(args.comfyui),
                 "--max-other-load", str(args.max_other_load), "--retries", str(args.retries)]
        for flag, value in (("--size", args.size), ("--preset", args.preset), ("--dtype", args.dtype)):
            if value is not None:
                child += [flag, str(value)]
        child += ["--tiny"] if args.tiny else []
        print("\nsecond pass, ComfyUI with --use-pytorch-cross-attention:", " ".join(child[1:]), flush=True)
        subprocess.run(child, check=True)
        for case, other in zip(report["cases"], json.loads(child_json.read_text())["cases"]):
            case["sdpa_pass"] = other
    report["wall_s"] = time.perf_counter() - t0
    json_path.write_text(json.dumps(report, indent=1, default=str))
    if str(args.out) == "-":
        print(f"\nwrote {json_path}")
        return 0
    out = args.out or (RESULTS_DIR / "BENCHMARKS-tiny.md" if args.tiny else DEFAULT_OUT)
    section = render_section(args.mode, report)
    update_benchmarks(out, args.mode, section, host.swd_core)
    print(section)
    print(f"\nwrote {out} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
