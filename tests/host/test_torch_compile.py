"""ComfyUI's TorchCompileModel (inductor) + SwD LoRA Loader + SwD Sampler gives the latent it gives without
compiling. Compiling costs minutes on a CPU: one test, the SD3.5 stand-in, a small 3:4 latent.

Tolerance: 1e-4 absolute on a latent of magnitude ~1. Inductor fuses and reorders float32 arithmetic, so
the two runs differ by float32 rounding carried through the six steps (measured 4.8e-7 in the README's
first measurement); anything the compiled model did differently (a step skipped, another size, a stale
graph reused at the wrong size) moves the latent by more than 1e-1.

The compile counts and times over a sequence of sizes are measured by ``bench compile`` (BENCHMARKS.md),
never asserted here.
"""

from harness import paths


def test_torch_compile_gives_the_same_latent(host):
    import torch._dynamo

    model = host.node("UNETLoader")().load_unet(paths.SD3_DIFFUSION_MODEL, "default")[0]
    model = host.node("SwDLoraLoader").execute(model, paths.SD3_LORA, 1.0).args[0]
    compiled = host.node("TorchCompileModel").execute(model, "inductor").args[0]
    g = torch.Generator().manual_seed(11)
    cond = [[torch.randn(1, 30, 4096, generator=g), {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    sched = host.node("SwDSchedule").execute("SD3.5 Large, 6 steps", "", "").args[0]
    latent = {"samples": torch.zeros(1, 16, 32, 24)}

    def swd(m):
        return host.node("SwDSampler").execute(m, cond, cond, latent, sched, 7, 1.0, "bicubic").args[0]["samples"]

    torch._dynamo.reset()
    try:
        eager = swd(model)
        frames_before = torch._dynamo.utils.counters["frames"]["ok"]
        out = swd(compiled)
        assert torch._dynamo.utils.counters["frames"]["ok"] > frames_before  # it did compile
    finally:
        torch._dynamo.reset()
    assert out.shape == eager.shape == (1, 16, 32, 24)
    diff = (out - eager).abs().max().item()
    print(f"compiled vs eager: max |difference| {diff:.2e}")
    assert diff <= 1e-4
