"""Measuring one run: device sync, peak memory, how busy other processes kept the CPUs, medians."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


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
    """The kept repetitions of one kind of run."""

    times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    steps: list[list[float]] = field(default_factory=list)  # bare: per-step times of each repetition

    def summary(self) -> dict:
        out = {"median_s": statistics.median(self.times), "min_s": min(self.times), "max_s": max(self.times),
               "times_s": self.times, "peak_bytes": max(self.peaks),
               "peak_over_start_bytes": max(p - s for p, s in zip(self.peaks, self.starts, strict=True))}
        if self.steps:
            out["step_median_s"] = [statistics.median(col) for col in zip(*self.steps, strict=True)]
        return out


# --------------------------------------------------------------------------- machine, versions

def _git(root: Path, *args) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=20).stdout.strip()
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


def versions(root: Path) -> dict:
    """Python, torch, diffusers, ComfyUI, and the pack's commit at ``root``."""
    import diffusers

    comfy_version = "?"
    with contextlib.suppress(Exception):
        import comfyui_version

        comfy_version = comfyui_version.__version__
    commit = _git(root, "rev-parse", "--short", "HEAD") or "?"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "comfyui": comfy_version, "pack_commit": commit + (" + uncommitted changes" if dirty else "")}
