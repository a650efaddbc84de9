"""GGUF stand-ins: the SD3.5, FLUX and SDXL stand-in diffusion models as quantised GGUF files, made the way
users' files are made.

* ``diffusion_models/swd-standin-sd35-Q8_0.gguf``, ``…-Q4_0.gguf``: from the SD3.5 stand-in checkpoint
  (its MMDiT in ComfyUI's keys: ``convert.py`` strips ``model.diffusion_model.`` and drops the VAE);
* ``diffusion_models/swd-standin-flux1-dev-Q8_0.gguf``, ``…-Q4_0.gguf``: from the FLUX stand-in (BF16,
  reference keys);
* ``diffusion_models/swd-standin-sdxl-Q8_0.gguf``, ``…-Q4_0.gguf``: from the SDXL stand-in UNet file (F16,
  ComfyUI's LDM keys without a prefix: ``convert.py`` detects ``sdxl`` by its non-diffusers keys
  ``input_blocks.3.0.op.weight`` …, and, as for every ``sdxl`` file, flattens each 2-D+ weight whose last
  dimension is not a multiple of 256 to rows of 256, ``comfy.gguf.orig_shape.*`` keeping the shape, so the
  3x3 and 1x1 convolutions are 2-D and quantised too).

Users' route (ComfyUI-GGUF's ``tools/README.md``): ``tools/convert.py`` writes an F16/BF16 GGUF, then
llama.cpp's ``llama-quantize`` (patched by ``tools/lcpp.patch``) quantises it. Step 1 here is
``convert.py``'s own ``convert_file``, run from the copy the development host installed
(``.host/custom_nodes/ComfyUI-GGUF``, see ``harness.third_party``). Step 2 stands in for
``llama-quantize``, which cannot be built here: the ``gguf`` package's quantiser applies the patched
``llama-quantize``'s rules for image models (`quant_type`): a tensor is quantised when its name ends in
``weight``, it has exactly two dimensions and it is not on the architecture's keep list (`KEEP`: the
input/output layers and the time, text and class embedders, e.g. SD3's ``pos_embed``, FLUX's ``img_in``,
SDXL's ``time_embed``, ``label_emb``, ``input_blocks.0.0`` and ``out.2``); at Q4_0 the feed-forward's down
projections (`FFN_DOWN`: SDXL's ``….ff.net.2.weight``; SD3 and FLUX have none) are Q4_1; rows that are not
whole 32-value blocks are left as they are (``llama-quantize`` would stop there; the stand-ins have none).
Everything else is copied: F16/BF16 as ``convert.py`` wrote it, F32 (1-D and small tensors of F32/BF16
sources) as F32.

Idempotent: ``standins-gguf.json`` records `VERSION`, the sources' sizes and the outputs; files are
written to a temporary name and renamed (a new inode: hard-linked model folders are not written through).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from .. import paths, third_party

VERSION = 3
QTYPES = ("Q8_0", "Q4_0")
MANIFEST = "standins-gguf.json"
SOURCES = {"sd35": f"checkpoints/{paths.SD3_CHECKPOINT}", "flux1-dev": f"diffusion_models/{paths.FLUX_DIFFUSION_MODEL}",
           "sdxl": f"diffusion_models/{paths.SDXL_DIFFUSION_MODEL}"}


def file_name(model: str, qtype: str) -> str:
    """``swd-standin-<model>-<qtype>.gguf`` (in ``diffusion_models/``); model: a key of `SOURCES` (``sd35``,
    ``flux1-dev``, ``sdxl``)."""
    return f"swd-standin-{model}-{qtype}.gguf"


FILES = {f"{m}-{q}": f"diffusion_models/{file_name(m, q)}" for m in SOURCES for q in QTYPES}


def _convert_module():
    folder = third_party.installed("ComfyUI-GGUF")
    if folder is None:
        return None
    spec = importlib.util.spec_from_file_location("comfyui_gguf_convert", folder / "tools" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _float32(t) -> np.ndarray:
    import gguf

    data = np.asarray(t.data)
    if t.tensor_type == gguf.GGMLQuantizationType.BF16:
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return data.astype(np.float32)


#: ``lcpp.patch``'s "rules for image models": (name parts, whole names) ``llama-quantize`` never quantises
KEEP = {
    "flux": (("txt_in.", "img_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer."), ()),
    "sd3": (("final_layer.", "time_text_embed.", "context_embedder.", "t_embedder.", "y_embedder.", "x_embedder."),
            ("proj_out.weight", "pos_embed")),
    "sdxl": (("class_embedding.", "time_embedding.", "add_embedding.", "time_embed.", "label_emb.", "conv_in.",
              "conv_out."), ("input_blocks.0.0.weight", "out.2.weight")),
}
#: ``lcpp.patch``'s ``img_tensor_get_type``: feed-forward down projections, Q4_1 where the file is Q4_0
FFN_DOWN = ("ffn_down", ".ffn.2.weight", ".ff.net.2.weight", ".mlp.layer2.weight", ".adaln_modulation_mlp.2.weight",
            ".feed_forward.w2.weight")


def quant_type(arch: str, name: str, shape: tuple, qtype_name: str) -> str | None:
    """The type the patched ``llama-quantize`` gives tensor ``name`` (torch-order ``shape``) of an ``arch``
    F16/BF16 GGUF quantised to ``qtype_name``; None: left as it is."""
    import gguf

    parts, names = KEEP[arch]
    if not name.endswith("weight") or len(shape) != 2 or name in names or any(p in name for p in parts):
        return None
    if qtype_name == "Q4_0" and any(p in name for p in FFN_DOWN):
        qtype_name = "Q4_1"
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype_name]][0]
    return qtype_name if shape[-1] % block == 0 else None


def quantize(src: Path, dst: Path, qtype_name: str) -> None:
    """``llama-quantize``'s stand-in: the F16/BF16 GGUF ``src`` in ``qtype_name`` (tensors by `quant_type`)."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(path=None, arch=arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype_name}"))
    for field in reader.fields.values():  # ComfyUI-GGUF's own keys (orig_shape of reshaped tensors)
        if field.name.startswith("comfy."):
            writer.add_array(field.name, field.contents())
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape))  # ggml order -> torch order
        half = t.tensor_type in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16)
        to = quant_type(arch, t.name, shape, qtype_name) if half else None
        if to is not None:
            qtype = gguf.GGMLQuantizationType[to]
            writer.add_tensor(t.name, gguf.quants.quantize(_float32(t).reshape(shape), qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    tmp = dst.with_name(dst.name + ".partial")
    writer.write_header_to_file(path=str(tmp))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, dst)


def _expected(out_dir: Path) -> dict:
    return {"version": VERSION, "files": FILES,
            "sources": {k: (out_dir / v).stat().st_size for k, v in SOURCES.items() if (out_dir / v).exists()}}


def write(out_dir, log=print) -> dict[str, Path] | None:
    """Write the GGUF stand-ins under ``out_dir`` unless up to date; None when ComfyUI-GGUF or gguf is missing."""
    out_dir = Path(out_dir).resolve()
    result = {k: out_dir / v for k, v in FILES.items()}
    manifest = out_dir / MANIFEST
    want = _expected(out_dir)
    try:
        if json.loads(manifest.read_text()) == want and all(p.is_file() for p in result.values()):
            return result
    except (OSError, ValueError):
        pass
    convert = _convert_module()
    if convert is None or importlib.util.find_spec("gguf") is None:
        log("GGUF stand-ins skipped: ComfyUI-GGUF is not in .host/custom_nodes or `gguf` is not installed")
        return None
    manifest.unlink(missing_ok=True)
    for model, rel in SOURCES.items():
        f16 = out_dir / "diffusion_models" / f"swd-standin-{model}-F16.gguf.partial"
        convert.convert_file(str(out_dir / rel), str(f16), interact=False, overwrite=True)
        for qtype in QTYPES:
            quantize(f16, out_dir / "diffusion_models" / file_name(model, qtype), qtype)
            log(f"gguf {model} {qtype}")
        f16.unlink()
    manifest.write_text(json.dumps(want, indent=2, sort_keys=True) + "\n")
    return result
