"""What rebuilding an SD3 ControlNet's hint at every SwD scale costs, on the stand-ins.

    .venv/bin/python dev/measure_controlnet.py [--size 512] [--runs 3]   (COMFYUI_PATH set, dev/ on PYTHONPATH)

Runs SwD Sampler (preset "SD3.5 Large, 6 steps", cfg 1) with the stand-in checkpoint and the
stand-in SD3 ControlNet (Apply ControlNet with the checkpoint's VAE) in ComfyUI's process and
times, per scale: the VAE encode of the resized hint (``comfy.sd.VAE.encode``), the rest of
``ControlNet.get_control`` (resize + the ControlNet's forward) and the diffusion model's call
(``BaseModel.apply_model``); prints the median of ``--runs`` runs per scale. The VAE is the
full-size SD3 VAE (so its encode costs what the real one does on this machine); the transformer
and the ControlNet are the tiny stand-ins (2 blocks and 1 block of width 128: far cheaper than
SD3.5 Large's 38 blocks of width 2432).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from harness import paths
from harness.comfy_host import Host


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="output width = height in pixels")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    host = Host()
    import comfy.controlnet
    import comfy.model_base
    import comfy.sd

    model, _clip, vae = host.node("CheckpointLoaderSimple")().load_checkpoint(paths.SD3_CHECKPOINT)[:3]
    controlnet = host.node("ControlNetLoader")().load_controlnet(paths.SD3_CONTROLNET)[0]
    g = torch.Generator().manual_seed(0)
    cond = [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    image = torch.rand(1, args.size, args.size, 3, generator=g)
    pos, neg = host.node("ControlNetApplyAdvanced")().apply_controlnet(cond, cond, controlnet, image, 1.0, 0.0, 1.0,
                                                                       vae=vae)
    schedule = host.node("SwDSchedule").execute("SD3.5 Large, 6 steps", "", "").args[0]
    latent = {"samples": torch.zeros(1, 16, args.size // 8, args.size // 8)}

    times = defaultdict(list)  # (what, latent size) -> seconds
    current = {}
    real_get, real_encode = comfy.controlnet.ControlNet.get_control, comfy.sd.VAE.encode
    real_apply = comfy.model_base.BaseModel.apply_model

    def get_control(cn, x, *a, **kw):
        current["encode"] = 0.0
        t0 = time.perf_counter()
        out = real_get(cn, x, *a, **kw)
        size = tuple(x.shape[-2:])
        times["encode", size].append(current["encode"])
        times["controlnet", size].append(time.perf_counter() - t0 - current["encode"])
        return out

    def encode(self, pixels):
        t0 = time.perf_counter()
        out = real_encode(self, pixels)
        current["encode"] = time.perf_counter() - t0
        return out

    def apply_model(self, x, *a, **kw):
        t0 = time.perf_counter()
        out = real_apply(self, x, *a, **kw)
        times[current["label"], tuple(x.shape[-2:])].append(time.perf_counter() - t0)
        return out

    comfy.controlnet.ControlNet.get_control = get_control
    comfy.sd.VAE.encode = encode
    comfy.model_base.BaseModel.apply_model = apply_model
    run_times = {"model": [], "model without CN": []}
    for _ in range(args.runs):
        for label, (p, n) in (("model", (pos, neg)), ("model without CN", (cond, cond))):
            current["label"] = label
            t0 = time.perf_counter()
            host.node("SwDSampler").execute(model, p, n, latent, schedule, 0, 1.0, "bicubic")
            run_times[label].append(time.perf_counter() - t0)
    sizes = sorted({s for _, s in times}, key=lambda s: s[0] * s[1])
    print(f"{args.size}x{args.size}, SD3.5 Large 6 steps, cfg 1, {torch.get_num_threads()} threads, "
          f"medians of {args.runs} runs (seconds)")
    keys = ("encode", "controlnet", "model", "model without CN")
    print("latent   hint px     VAE encode  ControlNet  model call  (model call without CN)")
    for s in sizes:
        med = {k: statistics.median(times[k, s]) for k in keys}
        print(f"{s[0]:>3}x{s[1]:<3}  {s[0] * 8:>4}x{s[1] * 8:<4}  {med['encode']:>10.3f}  {med['controlnet']:>10.3f}"
              f"  {med['model']:>10.3f}  ({med['model without CN']:.3f})")
    total = {k: sum(statistics.median(times[k, s]) for s in sizes) for k in keys}
    final = statistics.median(times["encode", sizes[-1]])
    print(f"per run (sums of the medians): VAE encodes {total['encode']:.2f} (the final size's alone {final:.2f}, "
          f"what encoding once would cost), ControlNet {total['controlnet']:.2f}, model calls {total['model']:.2f}; "
          f"SwD Sampler with ControlNet {statistics.median(run_times['model']):.2f}, "
          f"without {statistics.median(run_times['model without CN']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
