"""Soak: one real ComfyUI server, many queued SwD prompts, some interrupted mid-sampling.

    python3 scripts/dev.py soak [--prompts N] [--seed S] [--rss-bound-mib M] [--workdir DIR]

It starts ComfyUI (``main.py``) with the stand-in models and this pack, runs reference prompts
(which also warm it up), measures the server's RSS, then queues N prompts at once with varied
presets (and custom schedules), sizes, batch sizes, seeds, cfg, upscale methods and LoRA
strengths (or no LoRA). Every ``--interrupt-every``-th prompt is larger and gets
``POST /interrupt`` (for that prompt id) as soon as the websocket reports its sampler's first
step. A few prompts are queued twice, far apart. Then the reference prompts run again.

It passes when:
  * every prompt that was not interrupted finished, with a finite latent of the right shape;
    only prompts that were sent an interrupt were interrupted, inside the sampler, and at
    least one was; no prompt failed and the server log has no traceback;
  * the prompt without the LoRA gives a bit-identical latent before and after (the base
    model's weights are what they were: every LoRA patch was undone), and so does the LoRA
    prompt, with bit-identical decoded pixels; each repeated prompt gave identical latents;
  * the server's RSS, measured idle after ComfyUI's periodic garbage collection, is at most
    ``--rss-bound-mib`` above where it was after the warm-up.

It prints a summary and exits 0 on a pass, 1 otherwise. tests/server/test_soak_short.py runs
a short one (12 prompts) in the test suite.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import safetensors.torch
import torch
from PIL import Image

from harness.comfy_server import ComfyServer
from harness.prompts import txt2img

FINAL = {"execution_success": "done", "execution_error": "error", "execution_interrupted": "interrupted"}
SIZES = [(128, 128), (256, 128), (128, 256), (256, 256), (384, 256), (256, 384)]
CUSTOM_SCHEDULES = [("48, 96, 128", "1.0, 0.8, 0.6, 0"), ("32, 64, 96, 128", "1.0, 0.9, 0.75, 0.6")]
INTERRUPT_SIZE = (512, 512)  # larger, with cfg > 1, so that the interrupt lands while sampling
DEFAULT_RSS_BOUND_MIB = 64
#: glibc returns freed blocks of 1 MiB and more (tensors) to the OS at once, so that the idle RSS
#: shows what the server still holds rather than what the allocator keeps cached. Without it
#: the idle RSS of the same server swings by a few hundred MiB from one reading to the next.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
MIB = 1 << 20


class Listener:
    """One websocket for every prompt of this client: records messages per prompt id and sends
    ``POST /interrupt`` for a target prompt when its sampler reports a step."""

    def __init__(self, server: ComfyServer):
        self.server = server
        self.ws = server.connect()
        self.lock = threading.Lock()
        self.messages: dict[str, list[dict]] = {}
        self.targets: set[str] = set()
        self.interrupt_sent: dict[str, int] = {}  # prompt id -> step at which it was sent
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.closed:
            try:
                raw = self.ws.recv()
            except Exception:  # closed by stop()
                return
            if self.closed or not raw:
                return
            if not isinstance(raw, str):
                continue  # a binary preview
            msg = json.loads(raw)
            pid = msg.get("data", {}).get("prompt_id")
            if pid is None:
                continue
            with self.lock:
                self.messages.setdefault(pid, []).append(msg)
                fire = (msg["type"] == "progress" and msg["data"].get("node") == "sampler"
                        and pid in self.targets and pid not in self.interrupt_sent)
                if fire:
                    self.interrupt_sent[pid] = msg["data"]["value"]
            if fire:
                self.server.post("/interrupt", {"prompt_id": pid})

    def status(self, pid: str) -> str | None:
        with self.lock:
            for m in self.messages.get(pid, []):
                if m["type"] in FINAL:
                    return FINAL[m["type"]]
        return None

    def final(self, pid: str) -> dict:
        with self.lock:
            return next(m for m in self.messages[pid] if m["type"] in FINAL)

    def ran_sampler(self, pid: str) -> bool:
        with self.lock:
            msgs = list(self.messages.get(pid, []))
        cached = {n for m in msgs if m["type"] == "execution_cached" for n in m["data"].get("nodes", [])}
        return "sampler" not in cached and any(m["type"] == "executing" and m["data"].get("node") == "sampler"
                                               for m in msgs)

    def wait(self, pids, timeout: float):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.status(p) for p in pids):
                return
            if not self.server.alive():
                raise RuntimeError(f"the server died:\n{self.server.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{sum(not self.status(p) for p in pids)} prompt(s) unfinished after {timeout}s")

    def stop(self):
        self.closed = True
        self.ws.close()


class Soak:
    def __init__(self, server: ComfyServer, listener: Listener, settle: float):
        self.server, self.listener, self.settle = server, listener, settle
        self.proc = psutil.Process(server.proc.pid)
        self.rss_peak = 0
        self.problems: list[str] = []
        self._sampling = True
        threading.Thread(target=self._sample_rss, daemon=True).start()

    def _sample_rss(self):
        while self._sampling:
            try:
                self.rss_peak = max(self.rss_peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.2)

    def rss_idle(self) -> int:
        """RSS once the queue is empty, the history cleared (ComfyUI keeps up to 10000 prompts'
        records by design) and ComfyUI's idle gc (every 10 s) has run."""
        self.server.post("/history", {"clear": True})
        time.sleep(self.settle)
        return self.proc.memory_info().rss

    def queue(self, prompt: dict) -> str:
        status, resp = self.server.queue(prompt)
        if status != 200:
            raise RuntimeError(f"prompt rejected: {json.dumps(resp)[:2000]}")
        return resp["prompt_id"]

    def outputs(self, pid: str) -> dict:
        for _ in range(100):  # the history is written just after the prompt's last message
            outputs = self.server.history(pid).get("outputs")
            if outputs:
                return outputs
            time.sleep(0.05)
        raise RuntimeError(f"prompt {pid} has no outputs in the history")

    def latent(self, pid: str) -> torch.Tensor:
        f = self.outputs(pid)["save"]["latents"][0]
        return safetensors.torch.load_file(self.server.output_dir / f["subfolder"] / f["filename"])["latent_tensor"]

    def pixels(self, pid: str) -> np.ndarray:
        f = self.outputs(pid)["image"]["images"][0]
        return np.asarray(Image.open(self.server.output_dir / f["subfolder"] / f["filename"]))

    def run_one(self, prompt: dict, timeout: float = 600) -> str:
        pid = self.queue(prompt)
        self.listener.wait([pid], timeout)
        if self.listener.status(pid) != "done":
            self.problems.append(f"reference prompt {pid} ended {self.listener.status(pid)}: "
                                 f"{self.listener.final(pid)['data'].get('exception_message')}")
        elif not self.listener.ran_sampler(pid):
            self.problems.append(f"reference prompt {pid} came from the cache: the comparison would prove nothing")
        return pid

    def stop(self):
        self._sampling = False


def soak_prompts(n: int, seed: int, presets: list[str], methods: list[str], interrupt_every: int):
    """``[(prompt, expected latent shape, interrupt?)]``: varied, reproducible from ``seed``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        interrupt = interrupt_every > 0 and i % interrupt_every == interrupt_every - 1
        width, height = INTERRUPT_SIZE if interrupt else rng.choice(SIZES)
        batch = 1 if interrupt else rng.choice([1, 1, 2])
        kw = dict(seed=rng.randrange(2**32), width=width, height=height, batch=batch, prefix=f"soak_{i:03d}",
                  cfg=3.0 if interrupt else rng.choice([1.0, 1.0, 1.5, 3.0]),
                  upscale_method=rng.choice(methods), strength=rng.choice([1.0, 1.0, 0.5, 1.3, -0.5, 0.0]),
                  text=rng.choice(["a cat reading a newspaper", "a lighthouse at dusk", "", "ein Haus am See"]))
        if rng.random() < 0.15:
            kw["lora"] = None
        if rng.random() < 0.2:
            kw["preset"] = "custom"
            kw["scales"], kw["sigmas"] = rng.choice(CUSTOM_SCHEDULES)
        else:
            kw["preset"] = rng.choice(presets)
        out.append((txt2img(**kw), (batch, 16, height // 8, width // 8), interrupt))
    # A few prompts again, later in the queue, under a new file prefix: same inputs, same latent.
    plain = [i for i in range(n // 2) if not out[i][2]]
    for i in rng.sample(plain, k=min(len(plain), max(1, n // 20))):
        again = json.loads(json.dumps(out[i][0]))
        again["save"]["inputs"]["filename_prefix"] += "_again"
        out.append((again, out[i][1], False))
    return out


def run_soak(n_prompts: int, workdir: Path, seed: int = 0, rss_bound_mib: float = DEFAULT_RSS_BOUND_MIB,
             interrupt_every: int = 6, settle: float = 12.0) -> dict:
    """Run the soak; returns the summary (``summary["problems"]`` empty on a pass)."""
    t_start = time.time()
    server = ComfyServer(workdir, extra_args=["--preview-method", "latent2rgb"], env=MALLOC_ENV)
    startup_log = len(server.log())
    listener = Listener(server)
    soak = Soak(server, listener, settle)
    summary: dict = {"prompts": n_prompts, "seed": seed}
    try:
        info = server.object_info()
        presets = [p for p in info["SwDSchedule"]["input"]["required"]["preset"][1]["options"] if p != "custom"]
        methods = info["SwDSampler"]["input"]["required"]["upscale_method"][1]["options"]

        # Warm-up (the largest latents) and the reference prompts. The LoRA one, with a VAE decode,
        # comes last here and at the end, so that both RSS readings have the same models cached.
        soak.run_one(txt2img(seed=99, width=INTERRUPT_SIZE[0], height=INTERRUPT_SIZE[1], cfg=3.0, batch=1,
                             prefix="warmup"))
        soak.run_one(txt2img(seed=98, width=384, height=256, batch=2, prefix="warmup"))
        base_prompt = txt2img(seed=1234, lora=None, prefix="ref_base")
        lora_prompt = txt2img(seed=4321, decode=True, prefix="ref_lora")
        base0, lora0 = soak.run_one(base_prompt), soak.run_one(lora_prompt)
        before = soak.latent(base0), soak.latent(lora0), soak.pixels(lora0)
        rss0 = soak.rss_idle()
        summary["rss_after_warmup_mib"] = round(rss0 / MIB, 1)

        # The queue.
        plan = soak_prompts(n_prompts, seed, presets, methods, interrupt_every)
        t0 = time.time()
        pids = []
        for prompt, _, interrupt in plan:
            pid = soak.queue(prompt)
            if interrupt:
                with listener.lock:
                    listener.targets.add(pid)
            pids.append(pid)
        listener.wait(pids, timeout=120 + 60 * len(plan))
        summary["queue_seconds"] = round(time.time() - t0, 1)
        statuses = {pid: listener.status(pid) for pid in pids}
        done = [p for p in pids if statuses[p] == "done"]
        interrupted = [p for p in pids if statuses[p] == "interrupted"]
        failed = [p for p in pids if statuses[p] == "error"]
        summary.update(queued=len(pids), done=len(done), interrupted=len(interrupted), failed=len(failed),
                       interrupts_sent=len(listener.interrupt_sent),
                       interrupts_too_late=len([p for p in listener.interrupt_sent if statuses[p] == "done"]))
        for p in failed:
            d = listener.final(p)["data"]
            soak.problems.append(f"prompt {p} failed in {d.get('node_type')}: {d.get('exception_message')}")
        for p in interrupted:
            d = listener.final(p)["data"]
            if p not in listener.interrupt_sent:
                soak.problems.append(f"prompt {p} was interrupted but no interrupt was sent for it")
            elif d.get("node_id") != "sampler":
                soak.problems.append(f"prompt {p} was interrupted in {d.get('node_type')}, not while sampling")
        if any(interrupt for _, _, interrupt in plan) and not interrupted:
            soak.problems.append("no interrupt landed while sampling: the interrupt path was not exercised")
        by_pid = dict(zip(pids, plan))
        latents = {}
        for p in done:
            _, shape, _ = by_pid[p]
            lat = soak.latent(p)
            latents[p] = lat
            if tuple(lat.shape) != shape or not bool(torch.isfinite(lat).all()):
                soak.problems.append(f"prompt {p}: latent {tuple(lat.shape)} (want {shape}), finite: "
                                     f"{bool(torch.isfinite(lat).all())}")
        repeats = 0
        for p in pids[n_prompts:]:
            prefix = by_pid[p][0]["save"]["inputs"]["filename_prefix"].removesuffix("_again")
            first = next(q for q in pids[:n_prompts] if by_pid[q][0]["save"]["inputs"]["filename_prefix"] == prefix)
            if p in latents and first in latents:
                repeats += 1
                if not listener.ran_sampler(p):
                    soak.problems.append(f"the repeated prompt {prefix} came from the cache")
                if not torch.equal(latents[p], latents[first]):
                    soak.problems.append(f"the repeated prompt {prefix} gave a different latent")
        summary["repeated_prompts_identical"] = repeats
        if repeats == 0:
            soak.problems.append("no repeated prompt finished: the repeat check did not run")

        # Reference prompts (after).
        base1, lora1 = soak.run_one(base_prompt), soak.run_one(lora_prompt)
        summary["base_latent_identical"] = torch.equal(before[0], soak.latent(base1))
        summary["lora_latent_identical"] = torch.equal(before[1], soak.latent(lora1))
        summary["lora_pixels_identical"] = bool(np.array_equal(before[2], soak.pixels(lora1)))
        for key, what in [("base_latent_identical", "the base model's latent (no LoRA)"),
                          ("lora_latent_identical", "the LoRA prompt's latent"),
                          ("lora_pixels_identical", "the LoRA prompt's decoded pixels")]:
            if not summary[key]:
                soak.problems.append(f"{what} changed over the soak")

        rss1 = soak.rss_idle()
        summary.update(rss_end_mib=round(rss1 / MIB, 1), rss_peak_mib=round(soak.rss_peak / MIB, 1),
                       rss_growth_mib=round((rss1 - rss0) / MIB, 1), rss_bound_mib=rss_bound_mib)
        if rss1 - rss0 > rss_bound_mib * MIB:
            soak.problems.append(f"RSS grew by {(rss1 - rss0) / MIB:.0f} MiB (bound {rss_bound_mib} MiB)")
        tracebacks = server.log()[startup_log:].count("Traceback (most recent call last)")
        summary["server_log_tracebacks"] = tracebacks
        if tracebacks:
            soak.problems.append(f"the server log has {tracebacks} traceback(s)")
        summary["server_alive"] = server.alive()
        if not server.alive():
            soak.problems.append("the server is not running")
    finally:
        soak.stop()
        listener.stop()
        server.stop()
    summary["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    summary["total_seconds"] = round(time.time() - t_start, 1)
    summary["problems"] = soak.problems
    return summary


def print_summary(s: dict) -> None:
    print("\nSwD soak summary")
    for key, value in s.items():
        if key != "problems":
            print(f"  {key:28} {value}")
    print("  result                       " + ("PASS" if not s["problems"] else "FAIL"))
    for p in s["problems"]:
        print(f"  problem: {p}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=60, help="prompts to queue (default 60; at least 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt variations")
    ap.add_argument("--interrupt-every", type=int, default=6, help="interrupt every k-th prompt (0: never)")
    ap.add_argument("--rss-bound-mib", type=float, default=DEFAULT_RSS_BOUND_MIB,
                    help=f"allowed idle RSS growth over the soak (default {DEFAULT_RSS_BOUND_MIB})")
    ap.add_argument("--settle", type=float, default=12.0, help="idle seconds before an RSS reading (ComfyUI gc: 10)")
    ap.add_argument("--workdir", type=Path, help="server folders and log (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args(argv)
    if args.prompts < 2:
        ap.error("--prompts must be at least 2")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="swd-soak-"))
    try:
        summary = run_soak(args.prompts, workdir, args.seed, args.rss_bound_mib, args.interrupt_every, args.settle)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if not summary["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
