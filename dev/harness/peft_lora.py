"""A PEFT LoRA folder both ways, for the parity tests: through ComfyUI (as SwD LoRA Loader reads it)
and through PEFT itself (the reference)."""
from __future__ import annotations

import copy
import importlib
from pathlib import Path


def comfy_patched(host, patcher, lora_dir: Path, strength: float):
    """A clone of ``patcher`` with the LoRA in ``lora_dir`` applied the way SwD LoRA Loader applies it:
    PEFT's per-module scale as ``.alpha`` keys, ComfyUI's key map plus the PEFT aliases
    (``nodes.lora_keys``), ComfyUI's ``load_lora`` and ``add_patches``. Every key must load."""
    import comfy.lora
    import comfy.utils

    swd_lora = importlib.import_module(host.swd_core.__name__ + ".lora")
    lora_keys = importlib.import_module(host.pack.__name__ + ".nodes.lora_keys")
    sd = comfy.utils.load_torch_file(str(lora_dir / "adapter_model.safetensors"), safe_load=True)
    sd = swd_lora.with_peft_alphas(sd, swd_lora.read_adapter_config(lora_dir / "adapter_config.json"))
    key_map = lora_keys.peft_key_map(patcher.model, comfy.lora.model_lora_keys_unet(patcher.model, {}))
    loaded = comfy.lora.load_lora(sd, key_map)
    patched = patcher.clone()
    applied = patched.add_patches(loaded, strength)
    if not loaded or len(applied) != len(loaded) or len(loaded) != len(sd) // 3:
        raise AssertionError(f"{len(sd) // 3} LoRA modules, {len(loaded)} loaded, {len(applied)} applied")
    return patched


def peft_scaled(model, lora_dir: Path, strength: float):
    """PEFT's own LoRA on a copy of the diffusers ``model``, every module's scale times ``strength``."""
    return peft_stacked(model, [(lora_dir, strength)])


def peft_stacked(model, adapters: list[tuple[Path, float]]):
    """PEFT with every ``(folder, strength)`` of ``adapters`` loaded on a copy of ``model`` and active at
    once, each adapter's scale times its strength (PEFT adds each active adapter's ``scale * B @ A x``)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    names = [f"a{i}" for i in range(len(adapters))]
    peft = PeftModel.from_pretrained(copy.deepcopy(model), str(adapters[0][0]), adapter_name=names[0]).eval()
    for name, (folder, _) in zip(names[1:], adapters[1:]):
        peft.load_adapter(str(folder), adapter_name=name)
    peft.base_model.set_adapter(names)
    for module in peft.modules():
        if isinstance(module, LoraLayer):
            for name, (_, strength) in zip(names, adapters):
                if name in module.scaling:
                    module.scaling[name] *= strength
    return peft
