"""SwD on GGUF models: city96's ComfyUI-GGUF (``UnetLoaderGGUF``), installed in the development host's
custom_nodes as a user installs it, with the SD3.5, FLUX and SDXL stand-ins quantised to Q8_0 and Q4_0
(``harness.standins.gguf_files``: ComfyUI-GGUF's ``tools/convert.py`` + the ``gguf`` quantiser standing in
for its patched ``llama-quantize``).

ComfyUI-GGUF keeps the LoRA's patches beside the quantised weight and applies them at every forward,
after dequantising (``GGMLLayer.get_weight`` -> ``comfy.lora.calculate_weight``). The LoRA is checked
at PEFT's scale there by comparing the patched GGUF model with the patched full-precision one: their
difference must stay at the quantisation error (the same two models without the LoRA), and the LoRA's
own effect must be far larger than that.
"""
import pytest
import torch

from harness import paths, third_party
from harness.standins import gguf_files, sdxl

SIGMA = 0.75
#: how far the LoRA's change on the GGUF model may be from its change on the full-precision model (max over
#: max): the quantised weights under the LoRA change its effect a little (measured: see docs/speed-tools.md)
DELTA_BOUND = {"Q8_0": 0.05, "Q4_0": 0.3}
FAMILIES = {  # GGUF stem, full-precision file, LoRA, preset
    "sd3": ("sd35", paths.SD3_DIFFUSION_MODEL, paths.SD3_LORA, "SD3.5 Large, 6 steps"),
    "flux": ("flux1-dev", paths.FLUX_DIFFUSION_MODEL, paths.FLUX_LORA, "FLUX.1-dev, 4 steps"),
    "sdxl": ("sdxl", paths.SDXL_DIFFUSION_MODEL, paths.SDXL_LORA, "SDXL, 4 steps"),
}
#: ``general.architecture`` of each GGUF stem's files, as ComfyUI-GGUF's convert.py writes it
ARCH = {"sd35": "sd3", "flux1-dev": "flux", "sdxl": "sdxl"}
LATENT_CHANNELS = {"sd3": 16, "flux": 16, "sdxl": sdxl.LATENT_CHANNELS}


@pytest.fixture(scope="module")
def gguf_host(host):
    folder = third_party.installed("ComfyUI-GGUF")
    if folder is None:
        pytest.skip("ComfyUI-GGUF is not in .host/custom_nodes: `scripts/dev.py setup` copies it from "
                    "../shared/third_party (or $SWD_THIRD_PARTY); without that snapshot there is nothing to test")
    assert host.load_custom_node(folder), "ComfyUI-GGUF failed to import (is `gguf` installed?)"
    assert "UnetLoaderGGUF" in host.nodes.NODE_CLASS_MAPPINGS
    missing = [p for p in gguf_files.FILES.values() if not (paths.MODELS / p).is_file()]
    assert not missing, f"GGUF stand-ins missing (run scripts/dev.py setup): {missing}"
    return host


def inputs(family):
    """The latent and the model's inputs; ``y`` is the pooled text vector (for SDXL the model's ADM vector is
    built from it by `x0`, as ComfyUI's ``SDXL.encode_adm`` does when sampling)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, LATENT_CHANNELS[family], 16, 24, generator=g)
    if family == "sdxl":  # context 2048 (CLIP-L 768 + CLIP-G 1280), pooled CLIP-G 1280
        return x, {"c_crossattn": torch.randn(1, 7, 2048, generator=g),
                   "y": torch.randn(1, sdxl.POOLED_FEATURES, generator=g)}
    if family == "flux":
        return x, {"c_crossattn": torch.randn(1, 7, 768, generator=g), "y": torch.randn(1, 768, generator=g),
                   "guidance": torch.full((1,), 4.5)}
    return x, {"c_crossattn": torch.randn(1, 20, 4096, generator=g), "y": torch.randn(1, 2048, generator=g)}


def load_gguf(host, family, qtype):
    return host.node("UnetLoaderGGUF")().load_unet(gguf_files.file_name(FAMILIES[family][0], qtype))[0]


def load_full(host, family):
    return host.node("UNETLoader")().load_unet(FAMILIES[family][1], "default")[0]


def lora(host, model, strength=1.0):
    return host.node("SwDLoraLoader").execute(model, FAMILIES[family_of(model)][2], strength).args[0]


def family_of(model):
    return {"Flux": "flux", "SDXL": "sdxl"}.get(type(model.model).__name__, "sd3")


def x0(host, model, family):
    x, conds = inputs(family)
    if family == "sdxl":  # pooled 1280 + the six 256-wide size embeddings: the 2816-wide ADM vector
        conds["y"] = model.model.encode_adm(pooled_output=conds["y"], width=x.shape[-1] * 8, height=x.shape[-2] * 8)
        assert conds["y"].shape == (1, sdxl.ADM_FEATURES)
    return host.x0(model, x, SIGMA, **conds)


def rel(a, b):
    """max |a - b| over max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def test_standins_are_quantised_gguf_files():
    import gguf

    assert set(gguf_files.SOURCES) == set(ARCH) == {v[0] for v in FAMILIES.values()}
    for model in gguf_files.SOURCES:
        for qtype in gguf_files.QTYPES:
            reader = gguf.GGUFReader(str(paths.MODELS / gguf_files.FILES[f"{model}-{qtype}"]))
            arch = reader.get_field("general.architecture").contents()
            assert arch == ARCH[model]
            types = {t.tensor_type.name for t in reader.tensors}
            # the patched llama-quantize makes SDXL's feed-forward down projections (ff.net.2) Q4_1 at Q4_0
            extra = {"Q4_1"} if model == "sdxl" and qtype == "Q4_0" else set()
            assert qtype in types and types <= {qtype, "F32", "F16", "BF16"} | extra, types
            assert extra <= types
            weights = {t.name: t for t in reader.tensors if t.name.endswith("weight") and len(t.shape) == 2}
            # every 2-D weight with rows of whole 32-blocks is quantised unless lcpp.patch keeps it
            big = [t for t in weights.values() if int(t.shape[0]) % 32 == 0]
            quantised = [t for t in big if t.tensor_type.name in {qtype} | extra]
            kept = {t.name for t in big} - {t.name for t in quantised}
            assert quantised and kept and all(t.tensor_type.name in ("F16", "BF16") for t in big if t.name in kept)
            parts, names = gguf_files.KEEP[arch]
            assert all(n in names or any(p in n for p in parts) for n in kept), kept
            if model == "sdxl":
                # lcpp.patch keeps the time and ADM embedders and the first and last convolutions in F16
                for n in ("time_embed.0.weight", "label_emb.0.0.weight", "input_blocks.0.0.weight", "out.2.weight"):
                    assert weights[n].tensor_type.name == "F16", n
                ff_down = "input_blocks.4.1.transformer_blocks.0.ff.net.2.weight"
                assert weights[ff_down].tensor_type.name == ("Q4_1" if qtype == "Q4_0" else qtype)
                # convert.py flattened the 3x3 convolutions to rows of 256 (orig_shape keeps their shape): quantised
                conv = "input_blocks.1.0.in_layers.2.weight"
                assert list(reader.get_field(f"comfy.gguf.orig_shape.{conv}").contents()) == [320, 320, 3, 3]
                assert weights[conv].tensor_type.name == qtype


@pytest.mark.parametrize("qtype", gguf_files.QTYPES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_swd_lora_on_gguf_at_peft_scale(gguf_host, family, qtype, record_property):
    host = gguf_host
    full, quant = load_full(host, family), load_gguf(host, family, qtype)
    assert type(quant.model) is type(full.model)
    base_full, base_quant = x0(host, full, family), x0(host, quant, family)
    lora_full, lora_quant = x0(host, lora(host, full), family), x0(host, lora(host, quant), family)
    stack_full = x0(host, lora(host, lora(host, full), 0.5), family)
    stack_quant = x0(host, lora(host, lora(host, quant), 0.5), family)
    quant_err = rel(base_quant, base_full)  # the quantisation error, without LoRA
    lora_err = rel(lora_quant, lora_full)  # the same with the LoRA on both
    stack_err = rel(stack_quant, stack_full)
    effect = rel(lora_full, base_full)  # what the LoRA changes
    # the LoRA's own change on the GGUF model against its change on the full-precision one: a LoRA at
    # another scale k would be off by |1 - k| here, whatever the quantisation error
    delta_err = rel(lora_quant - base_quant, lora_full - base_full)
    stack_delta_err = rel(stack_quant - base_quant, stack_full - base_full)
    figures = dict(quant_err=quant_err, lora_err=lora_err, stack_err=stack_err, effect=effect, delta_err=delta_err,
                   stack_delta_err=stack_delta_err)
    record_property("figures", figures)
    print(f"{family} {qtype}: " + ", ".join(f"{k} {v:.2e}" for k, v in figures.items()))
    assert quant_err > 0  # a quantised model, not the same weights
    if family == "sdxl":
        # SDXL's random stand-in LoRA (rank 4, alpha 8 on every attention, feed-forward and ResNet layer) drives
        # the attention activations large (attn1.to_out up to 18 here), so the softmax amplifies the quantisation
        # error of the patched model: measured (gguf_files VERSION 3) Q8_0 quant_err 1.33e-04, lora_err 4.34e-03,
        # stack_err 4.19e-03, effect 9.15e-03, delta_err 0.473, stack_delta_err 0.462; Q4_0 quant_err 2.49e-03,
        # lora_err 7.33e-03, stack_err 5.16e-03, delta_err 0.728, stack_delta_err 0.566. The patched weights
        # themselves are full precision's to 5e-8 (test_sdxl_lora_weights_on_gguf_at_peft_scale checks the scale
        # there); here only that the outputs stay at those measured sizes
        assert lora_err <= 0.011 and stack_err <= 0.011
        assert delta_err <= 1.1 and stack_delta_err <= 1.1
        return
    # the LoRA on GGUF is within the quantisation error of the LoRA on full precision (the LoRA's weights
    # carry the dequantised weights' error into a larger output: measured up to 1.6 times; SD3.5 Q4_0 since
    # gguf_files VERSION 3 keeps the embedders and final layer in F16 as llama-quantize does: quant_err 1.35e-03,
    # lora_err 2.38e-03 (1.8x), stack_err 3.48e-03 (2.6x), the smaller quantisation error no longer hiding the
    # stacked LoRAs' share) ...
    factor = 3 if (family, qtype) == ("sd3", "Q4_0") else 2
    assert lora_err <= factor * quant_err and stack_err <= factor * quant_err
    # ... and its own change is full precision's, at PEFT's scale (within DELTA_BOUND)
    assert delta_err <= DELTA_BOUND[qtype] and stack_delta_err <= DELTA_BOUND[qtype]
    if qtype == "Q8_0":  # 8 bits: the LoRA's effect dwarfs the difference (at 4 bits these random
        assert effect >= 10 * lora_err  # stand-ins' quantisation error is about the LoRA's effect)


def test_sdxl_lora_weights_on_gguf_at_peft_scale(gguf_host):
    """SDXL's LoRA at PEFT's scale on GGUF, weight by weight: the change of every patched weight as
    ComfyUI-GGUF computes it at each forward (``GGMLLayer.get_weight``: dequantised, then the patches) equals the
    change of the full-precision weight ComfyUI patches in place; convolutions (flattened to rows of 256 in the
    file) and linear layers alike."""
    import comfy.model_management
    import comfy.utils

    host = gguf_host

    def weights(model, keys):
        comfy.model_management.load_models_gpu([model])
        out = {}
        for k in keys:
            module = comfy.utils.get_attr(model.model, k.rsplit(".", 1)[0])
            w = module.get_weight(module.weight, torch.float32) if hasattr(module, "get_weight") else module.weight
            out[k] = w.detach().float().clone()
        comfy.model_management.unload_all_models()
        return out

    full = load_full(host, "sdxl")
    patched_full = lora(host, full)
    keys = list(patched_full.patches)
    assert any(len(comfy.utils.get_attr(full.model, k).shape) == 4 for k in keys)  # conv LoRA pairs too
    change_full = {k: v - b for (k, v), b in zip(weights(patched_full, keys).items(), weights(full, keys).values())}
    for qtype in gguf_files.QTYPES:
        quant = load_gguf(host, "sdxl", qtype)
        patched = lora(host, quant)
        assert set(patched.patches) == set(keys)
        base, lora_w = weights(quant, keys), weights(patched, keys)
        worst = max(rel(lora_w[k] - base[k], change_full[k]) for k in keys)
        print(f"sdxl {qtype}: {len(keys)} patched weights, worst change vs full precision {worst:.2e}")
        assert worst <= 1e-5


def swd_sampler(host, model, family, latent, seed=5):
    preset = FAMILIES[family][3]
    x, conds = inputs(family)
    pooled = {"pooled_output": conds["y"]} | ({"guidance": 4.5} if family == "flux" else {})
    if family == "sdxl":  # what CLIPTextEncodeSDXL adds: the image's size, no crop
        h, w = latent.shape[-2] * 8, latent.shape[-1] * 8
        pooled |= {"width": w, "height": h, "crop_w": 0, "crop_h": 0, "target_width": w, "target_height": h}
    cond = [[conds["c_crossattn"], pooled]]
    sched = host.node("SwDSchedule").execute(preset, "", "").args[0]
    out = host.node("SwDSampler").execute(model, cond, cond, {"samples": latent}, sched, seed, 1.0, "bicubic")
    return out.args[0]["samples"], cond


@pytest.mark.parametrize("family", list(FAMILIES))
def test_swd_samplers_on_gguf(gguf_host, family):
    """SwD Sampler on the Q8_0 model with the SwD LoRA: the final-size latent, close to the full-precision
    run's (the quantisation error grows over the steps, so the bound is looser than one forward's); SamplerSwD
    in SamplerCustomAdvanced gives the same latent bit for bit."""
    host = gguf_host
    quant, full = lora(host, load_gguf(host, family, "Q8_0")), lora(host, load_full(host, family))
    latent = torch.zeros(1, LATENT_CHANNELS[family], 32, 48)
    out, cond = swd_sampler(host, quant, family, latent)
    ref, _ = swd_sampler(host, full, family, latent)
    assert out.shape == ref.shape == latent.shape and torch.isfinite(out).all()
    err = rel(out, ref)
    print(f"{family} Q8_0 SwD Sampler vs full precision: {err:.2e}")
    assert err < 0.05
    guider = host.node("BasicGuider").execute(quant, cond).args[0]
    custom = host.sampler_swd_custom_advanced(guider, FAMILIES[family][3], latent, 5)
    assert torch.equal(custom, out)
