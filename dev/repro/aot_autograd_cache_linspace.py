"""torch.compile(dynamic=True, backend="inductor") returns a wrong torch.linspace after a recompile.

The torch bug ``nodes/compile_hints.py`` works around (issue #23); for reporting it upstream. Run it with
``.venv/bin/python dev/repro/aot_autograd_cache_linspace.py``; ``tests/host/test_torch_compile.py`` checks it
still reproduces on the torch the tests run (when it stops, the workaround can go).

Plain torch (no ComfyUI); the pattern of ComfyUI's FLUX ``process_img`` (comfy/ldm/flux/model.py):
pad the latent to the patch size, then image position ids from ``torch.linspace(0, n - 1, steps=n)``
with ``n = (H + 1) // 2``. linspace's ``steps`` is an ``int`` in aten's schema, so dynamo specialises it
(guard ``(H + 1) // 2 == hint``) while H stays symbolic: every recompile traces the same FX graph. The
AOTAutograd cache key does not include dynamo's guards, and the guards it stores with an entry lose this
one (the pad's ``H % 2`` guards are involved: without the pad the stored guard fails and it misses as it
should), so the third size gets the second size's compiled graph: row ids ``0, 15/11, 30/11, ...`` instead
of ``0, 1, 2, ...``.

Expected: 0 everywhere. Observed (torch 2.14.1, CPU): 0, 0, 5.45 (an AOTAutograd cache hit).
TORCHINDUCTOR_AUTOGRAD_CACHE=0 (or torch._functorch.config.enable_autograd_cache = False) gives 0, 0, 0.
"""
import torch
import torch.nn.functional as F

#: latent sizes of SwD's FLUX steps 2-4 at 256x192 px
SIZES = ((20, 16), (24, 18), (32, 24))


def positions(x):
    """x [B, C, H, W] -> position ids [H/2, W/2, 2], as comfy.ldm.flux.model.Flux.process_img."""
    H, W = x.shape[-2:]
    x = F.pad(x, (0, (2 - W % 2) % 2, 0, (2 - H % 2) % 2), mode="circular")  # comfy.ldm.common_dit.pad_to_patch_size
    h, w = (H + 1) // 2, (W + 1) // 2
    ids = torch.zeros(h, w, 2)
    ids[:, :, 0] = ids[:, :, 0] + torch.linspace(0, h - 1, steps=h).unsqueeze(1)
    ids[:, :, 1] = ids[:, :, 1] + torch.linspace(0, w - 1, steps=w).unsqueeze(0)
    return ids


def differences() -> list[float]:
    """max |compiled - eager| at each of `SIZES`, compiled afresh (dynamo reset first)."""
    torch._dynamo.reset()
    compiled = torch.compile(positions, backend="inductor", dynamic=True)
    out = []
    for height, width in SIZES:
        x = torch.randn(1, 16, height, width)
        out.append((compiled(x) - positions(x)).abs().max().item())
    return out


if __name__ == "__main__":
    for (height, width), d in zip(SIZES, differences()):
        print(f"{height}x{width}: max |compiled - eager| = {d:.3g}")
    print("AOTAutograd cache:", dict(torch._dynamo.utils.counters["aot_autograd"]))
