"""SwDLoraLoader: an SwD LoRA applied to the MODEL exactly as PEFT applies it.

ComfyUI maps PEFT/diffusers SD3 key names itself but ignores ``adapter_config.json``, so a
PEFT LoRA with ``lora_alpha != r`` comes out at the wrong strength with the stock loader.
This node reads the config (PEFT's own ``LoraConfig``), writes PEFT's per-module scale as
``.alpha`` keys, then uses ComfyUI's LoRA loading and patching, and refuses keys that patch
nothing or shapes that do not fit.
"""
import contextlib
import logging
import math
import os
from pathlib import Path

import torch

import comfy.lora
import comfy.lora_convert
import comfy.model_management
import comfy.utils
import comfy.weight_adapter
import folder_paths

from .. import swd_core
from ..swd_core import lora as swd_lora
from . import feedback, lora_keys
from ._api import io, schema

NODE = "SwD LoRA Loader"
LORA_SUFFIXES = (".safetensors", ".sft")
log = logging.getLogger("swd")


def lora_names() -> list[str]:
    """safetensors files in every ``loras`` folder (PEFT folders show as ``name/adapter_model.safetensors``)."""
    return [n for n in folder_paths.get_filename_list("loras") if n.lower().endswith(LORA_SUFFIXES)]


def resolve_lora_path(name: str) -> Path:
    """The file behind ``name``, which must lie inside one of ComfyUI's ``loras`` folders."""
    if not name.lower().endswith(LORA_SUFFIXES):
        raise swd_core.SwDError(f"{name!r} is not a .safetensors file; other formats are never loaded (no unpickling)")
    if os.path.isabs(name) or ".." in Path(name).parts:
        raise swd_core.SwDError(f"{name!r} is not a name inside the loras folders")
    path = folder_paths.get_full_path("loras", name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths("loras"))
        raise swd_core.SwDError(f"LoRA {name!r} not found in the loras folders ({folders})")
    real = Path(path).resolve()
    if not _inside_loras(real):
        raise swd_core.SwDError(f"LoRA {name!r} links to {real}, outside the loras folders; copy the file in instead")
    return real


def _inside_loras(real: Path) -> bool:
    """Whether the resolved path ``real`` lies inside one of the (resolved) ``loras`` folders."""
    return any(real.is_relative_to(Path(root).resolve()) for root in folder_paths.get_folder_paths("loras"))


def unmatched_keys(state_dict: dict, key_map: dict) -> list[str]:
    """Keys of the LoRA file that ``comfy.lora.load_lora`` would skip: no module name of the key map
    is a ``.``-prefix of them (it reads ``{module}.lora_A.weight``, ``{module}.alpha``, ... per
    module of ``key_map``). Computed from the names, before anything is loaded."""
    modules = set(key_map)
    unmatched = []
    for key in state_dict:
        parts = key.split(".")
        if not any(".".join(parts[:i]) in modules for i in range(1, len(parts))):
            unmatched.append(key)
    return unmatched


@contextlib.contextmanager
def _capture_unloaded_keys(into: list[str]):
    """A second guard: ComfyUI's own 'lora key not loaded' warnings while `load_lora` runs
    (seen only where the log level lets warnings through; `unmatched_keys` is the real check)."""
    class Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("lora key not loaded: "):
                into.append(msg[len("lora key not loaded: "):])

    handler = Handler(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _refuse_unmatched(name: str, keys: list[str]) -> None:
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    raise swd_core.SwDError(
        f"{len(keys)} key(s) of {name!r} match no weight of this model ({shown}): the LoRA is for "
        f"another model or in an unknown layout"
    )


def _check_targets_exist(patches: dict, model_state: dict) -> None:
    """Refuse patches for weights the model lacks (ComfyUI's SD3 key map lists SD3.5 Medium's
    ``attn2`` for every model of the family, so a Medium LoRA maps even where no such weight is)."""
    missing = sorted({(k[0] if isinstance(k, tuple) else k) for k in patches} - set(model_state))
    if missing:
        dual = any(".attn2." in m for m in missing)
        hint = (" — an SD3.5 Medium (MMDiT-X, dual attention 'attn2') LoRA on a model without dual attention, "
                "such as SD3.0 Medium or SD3.5 Large" if dual else ": this LoRA was made for another model")
        raise swd_core.SwDError(
            f"the LoRA patches {len(missing)} weight(s) this model does not have ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}){hint}"
        )


def _weight_shape(model_state: dict, name: str, base_model=None) -> list[int]:
    """The shape of the model's weight ``name``. A quantised GGUF weight (ComfyUI-GGUF) is in ``model_state``
    as a meta tensor of its packed bytes' shape (ComfyUI-GGUF's state dict serves memory estimates); the
    weight itself carries its real shape as ``tensor_shape``."""
    weight = model_state[name]
    if base_model is not None:
        with contextlib.suppress(AttributeError):
            weight = comfy.utils.get_attr(base_model, name)
    return list(getattr(weight, "tensor_shape", None) or weight.shape)


def _check_shapes(patches: dict, model_state: dict, model_label: str, base_model=None) -> None:
    for key, patch in patches.items():
        if not isinstance(patch, comfy.weight_adapter.LoRAAdapter):
            continue
        name, offset = (key[0], key[1]) if isinstance(key, tuple) else (key, None)
        target = _weight_shape(model_state, name, base_model)
        if offset is not None:
            target[offset[0]] = offset[2]
        up, down = patch.weights[0], patch.weights[1]
        want_in = 1
        for d in target[1:]:
            want_in *= d
        got_in = down.numel() // down.shape[0]
        if up.shape[0] != target[0] or got_in != want_in:
            raise swd_core.SwDError(
                f"LoRA weights for {name} are {up.shape[0]}x{got_in} but the model's weight is "
                f"{target[0]}x{want_in}: this LoRA was made for another model than this {model_label} "
                f"(e.g. an SD3.5 Large LoRA on SD3.5 Medium, or an SD3.5 LoRA on FLUX)"
            )


STACK_KEY = "swd_lora_stack"  # model_options: the SwD LoRAs on this model, in loader order
STACK_PATCHES_KEY = "swd_lora_stack_patches"  # model_options: weight patches after the last SwD loader


def _patch_count(model) -> int:
    return sum(len(v) for v in model.patches.values())


def load_swd_lora(model, name: str, strength: float):
    """``(patched clone of model, report)``; see the module docstring."""
    path = resolve_lora_path(name)
    try:
        state_dict = comfy.utils.load_torch_file(str(path), safe_load=True)
    except comfy.model_management.InterruptProcessingException:
        raise
    except Exception as e:  # safetensors raises its own error types for broken files
        raise swd_core.SwDError(f"{name!r} is not a readable safetensors file (truncated or corrupt?): "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not state_dict:
        raise swd_core.SwDError(f"{name!r} holds no tensors: the LoRA is empty")
    broken = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise swd_core.SwDError(f"{name!r} holds NaN or inf values ({', '.join(broken[:3])}): the file is corrupt")
    modules = swd_lora.lora_modules(state_dict)  # lora_A/lora_B pairs are complete and of one rank, before the config
    warnings: list[str] = []  # lines the node shows as warnings
    config_path = path.parent / swd_lora.ADAPTER_CONFIG
    if path.name == swd_lora.ADAPTER_WEIGHTS and config_path.is_file():
        if not _inside_loras(config_path.resolve()):
            raise swd_core.SwDError(f"{swd_lora.ADAPTER_CONFIG} next to {name!r} links to {config_path.resolve()}, "
                                    f"outside the loras folders; copy the file in instead")
        config = swd_lora.read_adapter_config(config_path)
        state_dict = swd_lora.with_peft_alphas(state_dict, config)
        scale_note = (f"PEFT scale from {swd_lora.ADAPTER_CONFIG}: lora_alpha {config.lora_alpha} / "
                      f"{'sqrt(r)' if config.use_rslora else 'r'} with r {config.r}"
                      + (", per-module patterns" if config.rank_pattern or config.alpha_pattern else ""))
    elif any(k.endswith(".alpha") for k in state_dict):
        scale_note = "scale from the file's alpha keys"
    elif swd_lora.is_peft_file(state_dict):
        scale_note = "scale 1 (lora_alpha = r)"
        warnings.append(swd_lora.missing_config_note(name, path.parent.name, modules))
        log.warning("[swd] %s: %s", name, warnings[-1])
    else:
        scale_note = "no adapter_config.json and no alpha keys: scale 1 (alpha = rank)"
        log.warning("[swd] %s: %s", name, scale_note)
    model_family = swd_core.family_of_comfy_model(type(model.model))
    file_family = swd_lora.lora_family(modules)
    # the LoRA's family, where its names tell (SD1.5 included: named rather than "match no weight")
    if model_family is not None and file_family is not None and file_family != model_family.name:
        article = "an" if file_family.startswith("SD") else "a"
        raise swd_core.SwDError(
            f"{name!r} is {article} {file_family} LoRA but the model is {model_family.name} "
            f"({type(model.model).__name__}): load the LoRA made for this model (or the model it was made for)"
        )
    # ComfyUI's key map, plus the PEFT (`base_model.model.`) spelling where ComfyUI lacks it (FLUX)
    key_map = lora_keys.peft_key_map(model.model, comfy.lora.model_lora_keys_unet(model.model, {}))
    state_dict = comfy.lora_convert.convert_lora(state_dict)
    unmatched = unmatched_keys(state_dict, key_map)
    if unmatched:
        _refuse_unmatched(name, unmatched)
    unloaded: list[str] = []
    with _capture_unloaded_keys(unloaded):
        patches = comfy.lora.load_lora(state_dict, key_map)
    if unloaded:
        _refuse_unmatched(name, unloaded)
    if not patches:
        raise swd_core.SwDError(f"{name!r} patches nothing in this model")
    model_state = model.model_state_dict()
    _check_targets_exist(patches, model_state)
    _check_shapes(patches, model_state, model_family.name if model_family else type(model.model).__name__,
                  model.model)
    patched = model.clone()
    applied = patched.add_patches(patches, strength)
    skipped = set(patches) - set(applied)
    if skipped:  # the input model is untouched: only the discarded clone got the other patches
        names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in skipped)
        raise swd_core.SwDError(
            f"ComfyUI applied {len(applied)} of the {len(patches)} patches of {name!r} (not: {', '.join(names[:3])}"
            f"{' ...' if len(names) > 3 else ''}): refusing a partly applied LoRA"
        )
    report = f"{NODE}: {name}: patched {len(applied)} weights at strength {strength:g}; {scale_note}"
    # The stack so far travels with the model (clone() deep-copies model_options), so the last
    # loader can list every SwD LoRA; other loaders' patches are only counted (they carry no names).
    earlier = model.model_options.get(STACK_KEY, ())
    patched.model_options[STACK_KEY] = (*earlier, f"{name} @ {strength:g}")
    foreign = _patch_count(model) - model.model_options.get(STACK_PATCHES_KEY, 0)
    patched.model_options[STACK_PATCHES_KEY] = _patch_count(patched)
    if earlier:
        report += f"\nSwD LoRA stack: {' + '.join(patched.model_options[STACK_KEY])}"
    if foreign > 0:
        report += f"\nalso on this model: {foreign} weight patches from other loaders (e.g. stock LoRA Loader)"
    log.info("[swd] %s", report)
    return patched, "\n".join([*(f"{feedback.WARNING}{w}" for w in warnings), report])


class SwDLoraLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SwDLoraLoader",
            display_name=NODE,
            category="model/loaders",
            search_aliases=["SwD", "scale-wise", "scale-wise distillation", "distillation", "PEFT LoRA"],
            description=(
                "Loads an SwD LoRA (PEFT folder with adapter_config.json + adapter_model.safetensors, "
                "as released on Hugging Face, or one .safetensors file) onto SD3.5, FLUX.1-dev or SDXL "
                "with PEFT's exact scale (lora_alpha / r), which the stock LoRA loader ignores. Fails "
                "loudly on keys or "
                "shapes that do not fit the model."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model the LoRA was distilled from: SD3.5 Large or Medium, "
                                                "FLUX.1-dev, or SDXL base (or an SDXL finetune)."),
                io.Combo.Input("lora_name", options=lora_names(),
                               tooltip="From models/loras (and extra_model_paths.yaml). A PEFT folder shows "
                                       "as <folder>/adapter_model.safetensors; its adapter_config.json is "
                                       "read from the same folder."),
                io.Float.Input("strength_model", default=1.0, min=-100.0, max=100.0, step=0.01,
                               tooltip="Multiplies PEFT's scale; 1.0 is what the LoRA was trained for."),
            ],
            outputs=[io.Model.Output(tooltip="The model with the LoRA patched in (the input is not changed).")],
        )

    @classmethod
    def validate_inputs(cls, lora_name):
        if not isinstance(lora_name, str):  # linked: checked when the node runs
            return True
        try:
            resolve_lora_path(lora_name)
        except swd_core.SwDError as e:
            return f"{NODE}: {e}"
        return True

    @classmethod
    def execute(cls, model, lora_name, strength_model) -> io.NodeOutput:
        if not math.isfinite(strength_model):
            raise swd_core.SwDError(f"strength_model must be a finite number, got {strength_model}")
        if strength_model == 0:
            return io.NodeOutput(model, ui=feedback.text_output([f"{NODE}: strength 0, LoRA not applied"]))
        patched, report = load_swd_lora(model, lora_name, strength_model)
        return io.NodeOutput(patched, ui=feedback.text_output([report]))
