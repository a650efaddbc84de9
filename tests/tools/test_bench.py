"""dev/bench: its FLOP model, and its whole machinery at tiny size for one repetition.

No timing is asserted here (speed lives in BENCHMARKS.md); these tests check that the
benchmark measures what it says: the FLOP model against the issue's figures and against
torch's own FLOP counter, the peer loop computing the same latent as SwDSampler, and a
well-formed report.
"""
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench import cases, flux, gguf, report, runner, sd3, sdxl
from bench.flops import image_tokens, predicted_speedup, token_power_ratio
from harness import third_party
from harness.paths import COMFYUI, DEV, PYLIB, ROOT
from harness.reference.flux import velocity as flux_velocity

SIX = "SD3.5 Large, 6 steps"


def six_step_sizes_1024(core, preset=SIX):
    return core.latent_sizes(core.PRESETS[preset].scales, 128, 128, 2)


def test_flop_model_terms_for_the_six_step_schedule_at_1024(core):
    sizes = six_step_sizes_1024(core)
    assert sizes == [(32, 32), (48, 48), (64, 64), (80, 80), (96, 96), (128, 128)]
    tokens = [image_tokens(*s) for s in sizes]
    assert tokens == [256, 576, 1024, 1600, 2304, 4096]
    image_only = token_power_ratio(sizes, 1)
    attention_only = token_power_ratio(sizes, 2)
    # the figures: about 2.5x from image tokens alone, about 3.9x from attention alone
    assert image_only == pytest.approx(2.5, abs=0.05)
    assert image_only == pytest.approx(6 * 4096 / sum(tokens))
    assert attention_only == pytest.approx(3.9, abs=0.1)
    assert attention_only == pytest.approx(6 * 4096 ** 2 / sum(t * t for t in tokens))
    # constant text tokens shrink both; the whole model lies between its linear and attention parts
    with_text_linear = token_power_ratio(sizes, 1, text_tokens=sd3.TEXT_TOKENS)
    with_text_attention = token_power_ratio(sizes, 2, text_tokens=sd3.TEXT_TOKENS)
    assert with_text_linear < image_only and with_text_attention < attention_only
    for case in sd3.GPU_CASES:
        fm = sd3.flop_model(case.config)
        sizes = six_step_sizes_1024(core, case.preset)
        predicted = predicted_speedup(fm, sizes, 6, sd3.TEXT_TOKENS)
        assert with_text_linear < predicted < with_text_attention, case.key
        assert predicted_speedup(fm, sizes, 28, sd3.TEXT_TOKENS) == pytest.approx(predicted * 28 / 6)


def test_flop_model_architectures():
    large = sd3.flop_model(sd3.SD35_LARGE)
    medium = sd3.flop_model(sd3.SD35_MEDIUM)
    d = 2432
    assert large.joint_attention_width == 2 * 38 * d and large.image_attention_width == 0
    # per image token: patch embed, 38 blocks of qkv + out + MLP (ratio 4), final projection
    assert large.image_token_macs == 64 * d + 38 * 12 * d * d + d * 64
    assert medium.image_attention_width == 2 * 13 * 1536  # MMDiT-X: extra attention in blocks 0..12
    assert medium.joint_attention_width == 2 * 24 * 1536


@pytest.mark.parametrize("case", sd3.TINY_GPU_CASES, ids=lambda c: c.key)
@pytest.mark.parametrize("size", [(12, 20), (32, 32)])
def test_flop_model_matches_torch_flop_counter(case, size):
    """The FLOP model equals torch's FlopCounterMode on the diffusers model (attention on its
    math path, so that the counter sees the two attention matmuls), non-square sizes included."""
    model = SD3Transformer2DModel.from_config(case.config).eval()
    x = torch.randn(1, 16, *size)
    context, pooled = torch.randn(1, sd3.TEXT_TOKENS, 4096), torch.randn(1, 2048)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=context,
              pooled_projections=pooled)
    assert sd3.flop_model(case.config).flops(size, sd3.TEXT_TOKENS) == counter.get_total_flops()


def tables(markdown: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells; raises on a malformed one."""
    found, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            assert line.endswith("|"), line
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif current:
            header, sep, *rows = current
            assert all(re.fullmatch(r"-{3,}", c) for c in sep), sep
            for row in [sep, *rows]:
                assert len(row) == len(header), (header, row)
            found.append(current)
            current = []
    return found


def check_case(r: dict, run_table, ratio_table, step_table, variants=cases.VARIANTS):
    steps = len(r["sizes"])
    assert r["flop_model_matches_config"], "FlopModel.from_mmdit(ComfyUI's module) != from_config"
    if r["device"] == "cpu":
        assert r["comfy_loaded_fraction"] is None
    else:  # ComfyUI holds the whole model on the GPU: no weight streaming distorts its timings
        assert r["comfy_loaded_fraction"] == pytest.approx(1.0)
    # the peer loop computes the same latent as SwDSampler (same weights, seed, sizes, noise stream)
    tolerance = 1e-3 if r["dtype"] == "float32" else 0.25
    assert r["swd_vs_diffusers_max_abs"] < tolerance
    assert sorted(r["runs"]) == sorted(variants)
    for kind in variants:
        run = r["runs"][kind]
        assert len(run["times_s"]) == r["reps"] == 1
        assert 0 < run["median_s"] < math.inf and run["peak_bytes"] > 0
    assert len(r["runs"]["bare"]["step_median_s"]) == steps
    assert r["baseline_steps"] == cases.baseline_steps(cases.family_of(r["case"]))
    ratio_keys = (["overhead", "speedup_same", "speedup_base28", "peer"] if "base28" in variants
                  else ["overhead", "peer"])
    for key in ratio_keys:
        assert math.isfinite(r["ratios"][key]["measured"]) and r["ratios"][key]["measured"] > 0
    if "base28" in variants:
        same = r["ratios"]["speedup_same"]["flops"]
        base = r["baseline_steps"]
        assert r["ratios"]["speedup_base28"]["flops"] == pytest.approx(same * base / steps)

    assert len(run_table) == 2 + len(variants)
    medians = [float(row[2]) for row in run_table[2:]]
    assert medians == [pytest.approx(r["runs"][k]["median_s"], abs=1e-3) for k in variants]
    assert [row[0].split(":")[0] for row in ratio_table[2:]] == [k.split("_")[0] for k in ratio_keys]
    for row in ratio_table[2:]:
        float(row[1]), float(row[2]), float(row[3])
        assert row[6] in ("yes", "**no**")
    if step_table is not None:
        assert len(step_table) == 2 + steps
        assert [row[1] for row in step_table[2:]] == [f"{h}x{w}" for h, w in r["sizes"]]


def test_gpu_code_path_tiny_in_process(host, tmp_path):
    """`--mode gpu --tiny` in this process: Large- and Medium-shaped (MMDiT-X) models, one repetition."""
    results = runner.run_cases(host, "gpu", True, reps=1, warmup=0, families=("sd3",), command="--mode gpu --tiny",
                               log=lambda *a: None)
    assert [c["case"]["key"] for c in results["cases"]] == ["tiny-large", "tiny-medium"]
    section = report.render_section("gpu", results)
    found = tables(section)
    assert len(found) == 3 * 2
    for i, r in enumerate(results["cases"]):
        check_case(r, *found[3 * i:3 * i + 3])
    assert section.count("Seconds per image") == 2
    out = tmp_path / "BENCHMARKS.md"
    text = report.update_benchmarks(out, "gpu", section, host.swd_core)
    assert text.startswith(report.prose()) and section in text
    assert "Pending: rerun with `python3 scripts/dev.py bench --mode cpu`" in text
    # writing the other mode keeps this one as it was
    cpu = "<!-- bench:cpu:begin -->\n## CPU\nstub\n<!-- bench:cpu:end -->"
    text = report.update_benchmarks(out, "cpu", cpu, host.swd_core)
    assert cpu in text and section in text and text.index(cpu) < text.index(section)


def test_cli_tiny_cpu_run(tmp_path):
    """`python -m bench --tiny` as scripts/dev.py runs it: report, JSON, and (where ComfyUI's attention
    is not PyTorch SDPA, its CPU default) the second pass in a child process."""
    out, raw = tmp_path / "B.md", tmp_path / "r.json"
    env = dict(os.environ, COMFYUI_PATH=str(COMFYUI), PYTHONPATH=os.pathsep.join([str(DEV), str(PYLIB)]))
    # the full-size baselines are covered in-process above; here only what the CLI adds
    proc = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--family", "sd3", "--reps", "1", "--warmup", "0",
                           "--variants", "swd,bare,diffusers", "--retries", "0", "--out", str(out), "--json", str(raw)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (r,) = json.loads(raw.read_text())["cases"]
    text = out.read_text()
    assert text.startswith(report.prose())
    assert ("with `python3 scripts/dev.py bench --tiny --family sd3 --reps 1 --warmup 0 --variants swd,bare,diffusers "
            "--retries 0 ") in text
    assert "(it runs `PYTHONPATH=dev .venv/bin/python -m bench --tiny --family sd3 --reps 1 " in text
    gpu = text[text.index("<!-- bench:gpu:begin -->"):text.index("<!-- bench:gpu:end -->")]
    assert "## GPU\n\nPending" in gpu  # no GPU run yet: the FLOP model's predictions stand in
    assert [row[0] for row in tables(gpu)[0][2:]] == [c.title for c in sd3.GPU_CASES]
    assert "## CPU: FLUX\n\nPending: rerun with `python3 scripts/dev.py bench --mode cpu --family flux`" in text
    assert "## CPU: SDXL\n\nPending: rerun with `python3 scripts/dev.py bench --mode cpu --family sdxl`" in text
    cpu = text[text.index("<!-- bench:cpu:begin -->"):text.index("<!-- bench:cpu:end -->")]
    found = tables(cpu)
    sdpa = r.get("sdpa_pass")
    assert (sdpa is not None) == (r["comfy_attention"] != "attention_pytorch")
    variants = cases.REQUIRED_VARIANTS
    if sdpa is None:
        assert len(found) == 3
        check_case(r, *found, variants=variants)
    else:
        assert sdpa["comfy_attention"] == "attention_pytorch"
        assert len(found) == 5
        check_case(r, found[0], found[1], found[4], variants=variants)
        check_case(sdpa, found[2], found[3], None, variants=cases.REQUIRED_VARIANTS)


def test_rewriting_a_section_keeps_the_rest_of_benchmarks_md(core, tmp_path):
    """The report code owns only the text between a mode's markers: writing BENCHMARKS.md's own CPU
    section back gives the same file (its prose and the GPU section untouched)."""
    original = report.BENCHMARKS.read_text()
    begin, end = report.BEGIN.format("cpu"), report.END.format("cpu")
    section = original[original.index(begin):original.index(end) + len(end)]
    copy = tmp_path / "BENCHMARKS.md"
    copy.write_text(original)
    assert report.update_benchmarks(copy, "cpu", section, core) == original == copy.read_text()
    changed = report.update_benchmarks(copy, "cpu", f"{begin}\n## CPU\nstub\n{end}", core)
    assert changed.startswith(report.prose()) and changed != original
    assert changed[changed.index(report.BEGIN.format("gpu")):] == original[original.index(report.BEGIN.format("gpu")):]


# ---------------------------------------------------------------- FLUX


def test_flux_flop_model_architecture():
    """FLUX.1-dev: 19 double + 38 single blocks at hidden 3072, joint attention in all 57."""
    fm = flux.flop_model(flux.FLUX1_DEV)
    d = 3072
    assert fm.joint_attention_width == 2 * 57 * d and fm.image_attention_width == 0 and fm.patch == 2
    # per image token: packed 2x2 patch in, 57 blocks of 12 d^2 (double: qkv + out + MLP; single:
    # linear1 + linear2), final projection; text tokens: T5 projection and the same 57 blocks
    assert fm.image_token_macs == 64 * d + 57 * 12 * d * d + d * 64
    assert fm.text_token_macs == 4096 * d + 57 * 12 * d * d
    # timestep and guidance embedders, pooled CLIP-L, modulation (6 + 6, 3 per block, final 2)
    assert fm.sample_macs == 2 * (256 * d + d * d) + 768 * d + d * d + (19 * 12 + 38 * 3 + 2) * d * d
    assert flux.TEXT_TOKENS == 512 and flux.BASELINE_STEPS == 30


@pytest.mark.parametrize("case", [flux.TINY_CASE, flux.CPU_CASE], ids=lambda c: c.key)
@pytest.mark.parametrize("size", [(12, 20), (32, 32)])
def test_flux_flop_model_matches_torch_flop_counter(case, size):
    """The FLUX FLOP model equals torch's FlopCounterMode on the diffusers model, called as the
    reference loop calls it (packed latents, guidance), attention on the math path."""
    model = FluxTransformer2DModel.from_config(case.config).eval()
    text = 40
    x = torch.randn(1, 16, *size)
    context, pooled = torch.randn(1, text, flux.CONTEXT_FEATURES), torch.randn(1, flux.POOLED_FEATURES)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.inference_mode():
        flux_velocity(model, x, 0.5, context, pooled, torch.zeros(text, 3), flux.GUIDANCE)
    assert flux.flop_model(case.config).flops(size, text) == counter.get_total_flops()


def test_flux_predictions_lie_between_linear_and_attention_terms(core):
    case, = flux.GPU_CASES
    fm = flux.flop_model(case.config)
    sizes = core.latent_sizes(core.PRESETS[case.preset].scales, 128, 128, fm.patch)
    assert sizes == [(64, 64), (80, 80), (96, 96), (128, 128)]
    predicted = predicted_speedup(fm, sizes, 4, flux.TEXT_TOKENS)
    assert (token_power_ratio(sizes, 1, text_tokens=flux.TEXT_TOKENS) < predicted
            < token_power_ratio(sizes, 2, text_tokens=flux.TEXT_TOKENS))
    assert predicted_speedup(fm, sizes, 30, flux.TEXT_TOKENS) == pytest.approx(predicted * 30 / 4)
    table = report.pending_section("gpu-flux", core)
    (rows,) = tables(table)
    assert rows[0][-1] == "30-step baseline / SwD"
    assert rows[2][0] == case.title and float(rows[2][3]) == pytest.approx(predicted, abs=0.005)


def test_flux_tiny_in_process(host, tmp_path):
    """The tiny FLUX case through the whole bench machinery in this process, one repetition: ComfyUI's Flux
    built from the explicit config, guidance 4.5 in its conditioning, the 30-step baseline, the diffusers
    reference loop giving SwDSampler's latent, and its own report section beside SD3's."""
    results = runner.run_cases(host, "cpu", True, reps=1, warmup=0, families=("flux",), command="--family flux",
                               log=lambda *a: None)
    (r,) = results["cases"]
    assert r["case"]["key"] == "tiny-flux" and r["case"]["family"] == "flux"
    assert r["baseline_steps"] == 30 and r["text_tokens"] == 512
    section = report.render_section("cpu", results, "flux")
    assert section.startswith("<!-- bench:cpu-flux:begin -->\n## CPU: FLUX (tiny smoke run")
    found = tables(section)
    assert len(found) == 3
    check_case(r, *found)
    assert "30-step baseline / `SwDSampler`" in section
    out = tmp_path / "BENCHMARKS.md"
    sd3_cpu = "<!-- bench:cpu:begin -->\n## CPU\nstub\n<!-- bench:cpu:end -->"
    report.update_benchmarks(out, "cpu", sd3_cpu, host.swd_core)
    text = report.update_benchmarks(out, "cpu-flux", section, host.swd_core)
    assert sd3_cpu in text and section in text  # measuring one family keeps the other's section
    assert [text.index(report.BEGIN.format(s)) for s in report.SECTIONS] == sorted(
        text.index(report.BEGIN.format(s)) for s in report.SECTIONS)


def test_pending_sections_are_the_report_codes(core):
    """Every section of BENCHMARKS.md still pending is what the report code writes now (the GPU ones
    with the FLOP model's predictions): SD3's and FLUX's predictions did not move when the flop
    models were generalised for the UNet, and SDXL's are the current model's."""
    text = report.BENCHMARKS.read_text()
    pending = [s for s in report.SECTIONS if "Pending" in text[text.index(report.BEGIN.format(s)):
                                                                text.index(report.END.format(s))]]
    assert {"gpu", "gpu-flux", "gpu-sdxl"} <= set(pending)
    for section in pending:
        assert report.pending_section(section, core) in text, section


# ---------------------------------------------------------------- SDXL


def test_sdxl_flop_model_architecture():
    """SDXL base 1.0: three levels (320/640/1280), no attention at level 0, 2 transformer blocks per
    attention at level 1 (2 encoder + 3 decoder attentions), 10 at level 2 (2 + 3 + the middle block)."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(sdxl.SDXL_BASE)
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684  # SDXL base's UNet
    fm = sdxl.flop_model(sdxl.SDXL_BASE)
    assert fm.patch == 4 and len(fm.pixel_macs) == 3
    assert fm.self_attention_width == fm.cross_attention_width == (0, 2 * 5 * 2 * 640, 2 * 6 * 10 * 1280)
    assert fm.text_token_macs == 2 * 2048 * (5 * 2 * 640 + 6 * 10 * 1280)  # cross-attention k/v
    assert fm.tokens((128, 128)) == 64 * 64 and fm.level_pixels((128, 128)) == [128 * 128, 64 * 64, 32 * 32]
    assert fm.attention_share((128, 128), sdxl.TEXT_TOKENS) == pytest.approx(0.12, abs=0.01)
    assert sdxl.TEXT_TOKENS == 77 and sdxl.BASELINE_STEPS == 30 and sdxl.BASELINE_SCHEDULER == "normal"


def test_sdxl_flop_model_matches_comfy_module(host):
    """The FLOP model from the diffusers config = the one read off ComfyUI's SDXL UNet (built on the meta
    device by ComfyUI's own SDXL model class from the config the bench loads it with), full size included."""
    import comfy.supported_models

    from harness.standins import sdxl as standins_sdxl

    for config in (sdxl.TINY_CASE.config, sdxl.CPU_CASE.config, sdxl.SDXL_BASE):
        unet_config = standins_sdxl.comfy_unet_config(config)
        model_config = comfy.supported_models.SDXL(dict(unet_config))
        model_config.unet_config["num_head_channels"] = unet_config["num_head_channels"]
        model = model_config.get_model({}, device="meta")
        assert sdxl.flop_model_of_comfy(model.diffusion_model) == sdxl.flop_model(config)


def test_sdxl_bare_forward_gets_comfys_added_conditioning(host):
    """The bare forwards' ``y`` is what ``model_base.SDXL.encode_adm`` makes of the conditioning when ComfyUI's
    samplers add the latent's size x 8 (original = target size, no crop), as SwDSampler's forwards get it."""
    import comfy.supported_models

    from harness.standins import sdxl as standins_sdxl

    unet_config = standins_sdxl.comfy_unet_config(sdxl.TINY_CASE.config)
    model = comfy.supported_models.SDXL(dict(unet_config)).get_model({}, device="meta")
    cond = sdxl.conditioning(2, sdxl.TEXT_TOKENS, torch.Generator().manual_seed(0), image_size=(768, 512))
    expected = model.encode_adm(pooled_output=cond.pooled, width=512, height=768)
    assert expected.shape == (2, sdxl.ADM_FEATURES)
    assert torch.equal(cond.bare_kwargs("cpu")["y"], expected)


@pytest.mark.parametrize("case", [sdxl.TINY_CASE, sdxl.CPU_CASE], ids=lambda c: c.key)
@pytest.mark.parametrize("size", [(12, 20), (32, 32)])
def test_sdxl_flop_model_matches_torch_flop_counter(case, size):
    """The UNet FLOP model equals torch's FlopCounterMode on the diffusers model, called as the reference
    loop calls it (77 text tokens, pooled + size conditioning), attention on the math path."""
    model = UNet2DConditionModel.from_config(case.config).eval()
    x = torch.randn(1, 4, *size)
    context, pooled = torch.randn(1, sdxl.TEXT_TOKENS, sdxl.CONTEXT_FEATURES), torch.randn(1, sdxl.POOLED_FEATURES)
    time_ids = torch.tensor([[512.0, 512.0, 0.0, 0.0, 512.0, 512.0]])
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x, torch.tensor([500]), encoder_hidden_states=context,
              added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids})
    assert sdxl.flop_model(case.config).flops(size, sdxl.TEXT_TOKENS) == counter.get_total_flops()


def test_sdxl_predictions_lie_between_pixel_and_attention_terms(core):
    case, = sdxl.GPU_CASES
    fm = sdxl.flop_model(case.config)
    sizes = core.latent_sizes(core.PRESETS[case.preset].scales, 128, 128, fm.patch)
    assert sizes == [(64, 64), (80, 80), (96, 96), (128, 128)]
    predicted = predicted_speedup(fm, sizes, 4, sdxl.TEXT_TOKENS)
    # mostly convolutions and linear layers (linear in pixels), a little attention (quadratic)
    assert token_power_ratio(sizes, 1, tokens=fm.tokens) < predicted < token_power_ratio(sizes, 2, tokens=fm.tokens)
    assert predicted_speedup(fm, sizes, 30, sdxl.TEXT_TOKENS) == pytest.approx(predicted * 30 / 4)
    table = report.pending_section("gpu-sdxl", core)
    (rows,) = tables(table)
    assert rows[0][-1] == "30-step baseline / SwD"
    assert rows[2][0] == case.title and float(rows[2][3]) == pytest.approx(predicted, abs=0.005)


def test_sdxl_gpu_code_path_tiny_in_process(host, tmp_path):
    """The tiny SDXL case through the GPU code path (`--mode gpu --tiny --family sdxl`, here on the CPU), one
    repetition: ComfyUI's model_base.SDXL built from the explicit config, the preset's DDPM times as
    ComfyUI's sigmas for the bare and stock runs, the 30-step "normal" baseline, the diffusers reference
    loop giving SwDSampler's latent, and its own report section beside the others."""
    results = runner.run_cases(host, "gpu", True, reps=1, warmup=0, families=("sdxl",),
                               command="--mode gpu --tiny --family sdxl", log=lambda *a: None)
    (r,) = results["cases"]
    assert r["case"]["key"] == "tiny-sdxl" and r["case"]["family"] == "sdxl"
    assert r["baseline_steps"] == 30 and r["baseline_scheduler"] == "normal" and r["text_tokens"] == 77
    assert r["sizes"] == [[16, 16], [20, 20], [24, 24], [32, 32]]  # multiples of 4: the UNet's three levels
    assert r["sigmas"] == [1.0, 0.8, 0.6, 0.4, 0.0]
    assert r["comfy_sigmas"][0] == pytest.approx(14.6146, rel=1e-4) and r["comfy_sigmas"][-1] == 0
    assert [st["sigma"] for st in r["per_step"]] == r["comfy_sigmas"][:-1]
    section = report.render_section("gpu", results, "sdxl")
    assert section.startswith("<!-- bench:gpu-sdxl:begin -->\n## GPU: SDXL (tiny smoke run")
    found = tables(section)
    assert len(found) == 3
    check_case(r, *found)
    assert "DDPM times t/1000 1, 0.8, 0.6, 0.4, 0 (ComfyUI sigmas 14.61, " in section
    assert "`BasicScheduler` normal 30 steps" in section and "30-step baseline / `SwDSampler`" in section
    assert section.count("Seconds per image") == 1
    out = tmp_path / "BENCHMARKS.md"
    gpu = "<!-- bench:gpu:begin -->\n## GPU\nstub\n<!-- bench:gpu:end -->"
    report.update_benchmarks(out, "gpu", gpu, host.swd_core)
    text = report.update_benchmarks(out, "gpu-sdxl", section, host.swd_core)
    assert gpu in text and section in text  # measuring one family keeps the others' sections
    assert "## CPU: SDXL\n\nPending" in text
    assert [text.index(report.BEGIN.format(s)) for s in report.SECTIONS] == sorted(
        text.index(report.BEGIN.format(s)) for s in report.SECTIONS)


# ---------------------------------------------------------------- GGUF (bench gguf)

needs_gguf = pytest.mark.skipif(third_party.installed("ComfyUI-GGUF") is None,
                                reason="ComfyUI-GGUF is not in .host/custom_nodes (scripts/dev.py setup copies it "
                                       "from ../shared/third_party): nothing to benchmark")


def check_gguf_family(r: dict, table):
    """One family's runs: full precision, Q8_0, Q4_0 (each + the SwD LoRA), one repetition each, and its table."""
    runs = r["runs"]
    assert list(runs) == list(gguf.KINDS) == ["full", "Q8_0", "Q4_0"]
    assert [run["loader"] for run in runs.values()] == ["UNETLoader", "UnetLoaderGGUF", "UnetLoaderGGUF"]
    for run in runs.values():
        assert len(run["times_s"]) == r["reps"] == 1
        assert 0 < run["median_s"] < math.inf and run["peak_bytes"] > 0
        assert run["time_vs_full"] == pytest.approx(run["median_s"] / runs["full"]["median_s"])
    assert runs["full"]["time_vs_full"] == runs["full"]["footprint_vs_full"] == 1.0
    # ComfyUI's size of the weights: the GGUF files' packed bytes, 4 bits below 8 below full precision
    assert runs["Q4_0"]["weights_bytes"] < runs["Q8_0"]["weights_bytes"] < runs["full"]["weights_bytes"]
    assert runs["full"]["latent_vs_full"] == 0
    assert 0 < runs["Q8_0"]["latent_vs_full"] < 0.05  # the same image, to the quantisation error (test_gguf.py)
    assert len(table) == 2 + len(runs)
    assert [float(row[2]) for row in table[2:]] == [pytest.approx(run["median_s"], abs=1e-3) for run in runs.values()]
    assert [float(row[4]) for row in table[2:]] == [pytest.approx(run["time_vs_full"], abs=0.01)
                                                    for run in runs.values()]


@needs_gguf
def test_gguf_gpu_code_path_tiny_in_process(host):
    """`bench gguf --mode gpu --tiny` in this process (on the CPU here): SwD Sampler on the SD3.5 stand-in loaded by
    UNETLoader and by UnetLoaderGGUF (Q8_0, Q4_0), each + the SwD LoRA, one repetition, and the GPU section."""
    gguf.gguf_host(host)
    results = gguf.run(host, "gpu", True, families=("sd3",), reps=1, warmup=0, command="--mode gpu --tiny",
                       log=lambda *a: None)
    (r,) = results["families"]
    assert r["family"] == "sd3" and r["pixels"] == 64 and r["latent"] == [1, 16, 8, 8] and r["steps"] == 6
    section = gguf.render(results)
    assert section.startswith("<!-- bench:gguf-gpu:begin -->\n## GGUF (GPU): SwD Sampler on Q8_0 / Q4_0 beside full "
                              "precision (tiny smoke run")
    assert section.endswith("<!-- bench:gguf-gpu:end -->")
    (table,) = tables(section)
    check_gguf_family(r, table)


@needs_gguf
def test_gguf_cli_tiny_cpu_run(tmp_path):
    """`python -m bench gguf --tiny` as scripts/dev.py runs it: the JSON, the CPU section and the GPU one pending
    in the report file; a second run rewrites its own section and keeps the rest."""
    out, raw = tmp_path / "B.md", tmp_path / "r.json"
    env = dict(os.environ, COMFYUI_PATH=str(COMFYUI), PYTHONPATH=os.pathsep.join([str(DEV), str(PYLIB)]))
    out.write_text("# kept\n\n<!-- bench:other:begin -->\nother\n<!-- bench:other:end -->\n")
    proc = subprocess.run([sys.executable, "-m", "bench", "gguf", "--tiny", "--family", "sd3", "--reps", "1",
                           "--warmup", "0", "--retries", "0", "--out", str(out), "--json", str(raw)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (r,) = json.loads(raw.read_text())["families"]
    text = out.read_text()
    assert text.startswith("# kept\n\n<!-- bench:other:begin -->\nother\n<!-- bench:other:end -->\n\n")
    cpu = text[text.index("<!-- bench:gguf-cpu:begin -->"):text.index("<!-- bench:gguf-cpu:end -->")]
    assert "with `python3 scripts/dev.py bench gguf --tiny --family sd3 --reps 1 --warmup 0 --retries 0 " in cpu
    (table,) = tables(cpu)
    check_gguf_family(r, table)
    assert gguf.pending("gpu") in text and text.index("gguf-cpu:begin") < text.index("gguf-gpu:begin")
    assert "Pending: rerun with `python3 scripts/dev.py bench gguf --mode gpu` on a CUDA machine" in text
    # the bench's own writer puts a section back where it was
    from bench.compile import write

    write(cpu + "<!-- bench:gguf-cpu:end -->", "gguf-cpu", out)
    assert out.read_text() == text
