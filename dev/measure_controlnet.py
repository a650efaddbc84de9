"""What rebuilding a ControlNet's hint at every SwD scale costs, on the stand-ins.

    .venv/bin/python dev/measure_controlnet.py [--family sd3|flux] [--layout instantx|xlabs] [--size 512] [--runs 3]
    (COMFYUI_PATH set, dev/ on PYTHONPATH)

Runs SwD Sampler (cfg 1) with a family's stand-ins in ComfyUI's process and times, per scale: the
VAE encodes of the resized hint (``comfy.sd.VAE.encode``, counted), the rest of
``ControlNet.get_control`` (resize + the ControlNet's forward) and the diffusion model's call
(``BaseModel.apply_model``); prints the median of ``--runs`` runs per scale.

* ``sd3`` (preset "SD3.5 Large, 6 steps"): the stand-in checkpoint and the stand-in SD3 ControlNet
  (Apply ControlNet with the checkpoint's VAE). The VAE is the full-size SD3 VAE (its encode costs
  what the real one does on this machine); the transformer and the ControlNet are tiny (2 blocks and
  1 block of width 128: far cheaper than SD3.5 Large's 38 blocks of width 2432).
* ``flux`` (preset "FLUX.1-dev, 4 steps", FluxGuidance 4.5): the FLUX.1-dev-width file stand-ins
  (1 double + 1 single block; the real model has 19 + 38), the full-size FLUX VAE and the FLUX
  ControlNet stand-in of ``--layout`` (1 double block at full width; InstantX's canny has 5 + 10):
  InstantX's hint is VAE-encoded per scale, XLabs' is not.
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
    ap.add_argument("--family", choices=("sd3", "flux"), default="sd3")
    ap.add_argument("--layout", choices=("instantx", "xlabs"), default="instantx", help="FLUX ControlNet layout")
    ap.add_argument("--size", type=int, default=512, help="output width = height in pixels")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    host = Host()
    import comfy.controlnet
    import comfy.model_base
    import comfy.sd

    g = torch.Generator().manual_seed(0)
    if args.family == "sd3":
        model, _clip, vae = host.node("CheckpointLoaderSimple")().load_checkpoint(paths.SD3_CHECKPOINT)[:3]
        controlnet_file, preset, what = paths.SD3_CONTROLNET, "SD3.5 Large, 6 steps", "SD3.5 Large 6 steps"
        cond = [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    else:
        model = host.node("UNETLoader")().load_unet(paths.FLUX_DIFFUSION_MODEL, "default")[0]
        vae = host.node("VAELoader")().load_vae(paths.FLUX_VAE)[0]
        controlnet_file = {"instantx": paths.FLUX_CONTROLNET_INSTANTX,
                           "xlabs": paths.FLUX_CONTROLNET_XLABS}[args.layout]
        preset, what = "FLUX.1-dev, 4 steps", f"FLUX.1-dev 4 steps, {args.layout} ControlNet"
        cond = [[torch.randn(1, 77, 768, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]]
        cond = host.node("FluxGuidance").execute(cond, 4.5).args[0]
    controlnet = host.node("ControlNetLoader")().load_controlnet(controlnet_file)[0]
    image = torch.rand(1, args.size, args.size, 3, generator=g)
    pos, neg = host.node("ControlNetApplyAdvanced")().apply_controlnet(cond, cond, controlnet, image, 1.0, 0.0, 1.0,
                                                                       vae=vae)
    schedule = host.node("SwDSchedule").execute(preset, "", "").args[0]
    latent = {"samples": torch.zeros(1, 16, args.size // 8, args.size // 8)}

    times = defaultdict(list)  # (what, latent size) -> seconds
    encodes = defaultdict(list)  # latent size -> encodes per run
    current = {}
    real_get, real_encode = comfy.controlnet.ControlNet.get_control, comfy.sd.VAE.encode
    real_apply = comfy.model_base.BaseModel.apply_model

    def get_control(cn, x, *a, **kw):
        current["encode"], current["encodes"] = 0.0, 0
        t0 = time.perf_counter()
        out = real_get(cn, x, *a, **kw)
        size = tuple(x.shape[-2:])
        times["encode", size].append(current["encode"])
        encodes[size].append(current["encodes"])
        times["controlnet", size].append(time.perf_counter() - t0 - current["encode"])
        return out

    def encode(self, pixels):
        t0 = time.perf_counter()
        out = real_encode(self, pixels)
        current["encode"] += time.perf_counter() - t0
        current["encodes"] += 1
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
    print(f"{args.size}x{args.size}, {what}, cfg 1, {torch.get_num_threads()} threads, "
          f"medians of {args.runs} runs (seconds)")
    keys = ("encode", "controlnet", "model", "model without CN")
    print("latent   hint px    encodes  VAE encode  ControlNet  model call  (model call without CN)")
    for s in sizes:
        med = {k: statistics.median(times[k, s]) for k in keys}
        per_run = sum(encodes[s]) / args.runs
        print(f"{s[0]:>3}x{s[1]:<3}  {s[0] * 8:>4}x{s[1] * 8:<4}  {per_run:>7g}  {med['encode']:>10.3f}"
              f"  {med['controlnet']:>10.3f}  {med['model']:>10.3f}  ({med['model without CN']:.3f})")
    total = {k: sum(statistics.median(times[k, s]) for s in sizes) for k in keys}
    final = statistics.median(times["encode", sizes[-1]])
    print(f"per run (sums of the medians): {sum(sum(v) for v in encodes.values()) / args.runs:g} VAE encodes, "
          f"{total['encode']:.2f} s (the final size's alone {final:.2f}, "
          f"what encoding once would cost), ControlNet {total['controlnet']:.2f}, model calls {total['model']:.2f}; "
          f"SwD Sampler with ControlNet {statistics.median(run_times['model']):.2f}, "
          f"without {statistics.median(run_times['model without CN']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
