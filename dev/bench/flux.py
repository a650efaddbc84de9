"""FLUX.1 (double- and single-stream DiT, distilled guidance) for the bench: cases, FLOP model, models, reference."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.reference import flux as reference_flux
from harness.standins import flux as standins_flux

from .family import Case, random_model
from .flops import FlopModel

NAME = "FLUX"
#: T5 tokens in FLUX's joint attention: upstream's call pads T5 to ``max_sequence_length=512``
#: (diffusers' FluxPipeline); ComfyUI pads a prompt to at least 256 T5 tokens
#: (comfy/text_encoders/flux.py, ``min_length=256``) and longer prompts add more. CLIP-L gives
#: only the pooled vector. We time upstream's 512: the SwD call as published, and the costlier
#: (smaller-speedup) of the two.
TEXT_TOKENS = 512
LATENT_CHANNELS = 16
CONTEXT_FEATURES = 4096  # T5-XXL
POOLED_FEATURES = 768  # CLIP-L
GUIDANCE = 4.5  # the distilled guidance SwD-FLUX was trained with (FluxGuidance on the conditioning)
#: the full-step baseline: the issue's "30 base steps" (SwD paper's FLUX table)
BASELINE_STEPS = 30
REFERENCE_LABEL = "diffusers loop: `FluxTransformer2DModel` + diffusers' latent packing"


def flux_config(double: int, single: int, heads: int, axes=(16, 56, 56), context: int = CONTEXT_FEATURES,
                pooled: int = POOLED_FEATURES) -> dict:
    """A diffusers ``FluxTransformer2DModel`` config with FLUX.1-dev's layout (guidance embedding,
    packed 2x2 latents as 64 input channels, MLP ratio 4); head dim = ``sum(axes)`` as in FLUX."""
    return dict(patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=double, num_single_layers=single,
                attention_head_dim=sum(axes), num_attention_heads=heads, joint_attention_dim=context,
                pooled_projection_dim=pooled, guidance_embeds=True, axes_dims_rope=tuple(axes))


#: black-forest-labs/FLUX.1-dev transformer: 19 double + 38 single blocks, hidden 3072 (24 heads of 128).
FLUX1_DEV = flux_config(19, 38, 24)

PRESET = "FLUX.1-dev, 4 steps"
CPU_CASE = Case(
    "cpu-flux", "FLUX-shaped DiT, 2 double + 4 single blocks, hidden 384 (3 heads of 128), random weights",
    flux_config(2, 4, 3), PRESET, 512, family="flux",
    note="Sized so that the whole CPU run takes a few minutes on 2 cores; FLUX.1-dev's 1:2 ratio of double "
         "to single blocks, its head size and RoPE axes, 512 T5 tokens; ComfyUI builds it from the explicit "
         "config (its detection fixes 24 heads, i.e. hidden 3072, for FLUX files).",
)
GPU_CASES = (Case("flux1-dev", "FLUX.1-dev architecture (random weights)", FLUX1_DEV, PRESET, 1024,
                  family="flux"),)
TINY_CASE = Case("tiny-flux", "tiny FLUX-shaped DiT, 2 double + 2 single blocks, hidden 64",
                 flux_config(2, 2, 2, axes=(8, 12, 12)), PRESET, 256, family="flux")
CASES = {"cpu": (CPU_CASE,), "gpu": GPU_CASES, "tiny-cpu": (TINY_CASE,), "tiny-gpu": (TINY_CASE,)}


def describe(config: dict) -> str:
    return (f"hidden {config['num_attention_heads'] * config['attention_head_dim']}, "
            f"{config['num_layers']} double + {config['num_single_layers']} single blocks, MLP ratio 4, "
            f"guidance embedding {'yes' if config['guidance_embeds'] else 'no'}")


def flop_model(cfg: dict) -> FlopModel:
    """The FLOP model of a diffusers ``FluxTransformer2DModel`` config (MLP ratio 4, as diffusers and BFL build it).

    Double blocks: each stream's qkv, out projection and MLP on its own tokens (12 d^2 per token), one
    joint attention over image + text. Single blocks: ``linear1`` (qkv + MLP in, 7 d^2) and ``linear2``
    (attention + MLP out, 5 d^2) over image and text tokens alike, one joint attention. Per sample:
    timestep, guidance and pooled embedders, every block's modulation (6 + 6 d^2 double, 3 d^2 single)
    and the final adaLN (2 d^2). Image tokens are 2x2 latent patches (``in_channels`` = 64 packed).
    """
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    double, single = cfg["num_layers"], cfg["num_single_layers"]
    packed = cfg["in_channels"]
    out = cfg.get("out_channels") or packed
    # double, per stream: qkv 3 d^2 + out d^2 + MLP 2 x 4 d^2; single: linear1 7 d^2 + linear2 5 d^2
    block = 12 * d * d
    image = packed * d + (double + single) * block + d * out
    text = cfg["joint_attention_dim"] * d + (double + single) * block
    sample = (256 * d + d * d) * (2 if cfg["guidance_embeds"] else 1)  # timestep (+ guidance) embedder
    sample += cfg["pooled_projection_dim"] * d + d * d  # pooled CLIP embedder
    sample += double * 12 * d * d + single * 3 * d * d + 2 * d * d  # modulation
    return FlopModel(image, text, sample, 2 * (double + single) * d, 0, 2)


def flop_model_of_comfy(flux) -> FlopModel:
    """The same model read off ComfyUI's ``comfy.ldm.flux.model.Flux`` (every Linear by the tokens it runs
    on): the check that :func:`flop_model` describes the network ComfyUI actually runs."""
    image = text = sample = 0
    for name, mod in flux.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        macs = mod.in_features * mod.out_features
        if (name.startswith(("time_in.", "guidance_in.", "vector_in.", "final_layer.adaLN_modulation."))
                or name.endswith(("_mod.lin", "modulation.lin"))):
            sample += macs
        elif name.startswith(("img_in", "final_layer.")) or ".img_" in name:
            image += macs
        elif name.startswith("txt_in") or ".txt_" in name:
            text += macs
        elif name.startswith("single_blocks."):  # linear1/linear2 run on the image and text tokens alike
            image += macs
            text += macs
        else:
            raise ValueError(f"flop_model_of_comfy: do not know which tokens {name!r} runs on")
    joint = 2 * flux.hidden_size * (len(flux.double_blocks) + len(flux.single_blocks))
    return FlopModel(image, text, sample, joint, 0, flux.patch_size)


def build_models(case: Case, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Random ``FluxTransformer2DModel`` on ``device`` and the same weights in ComfyUI's ``model_base.Flux``
    (a ModelPatcher), built from the explicit config as ``harness.standins.flux.comfy_model`` does."""
    from diffusers import FluxTransformer2DModel

    transformer = random_model(FluxTransformer2DModel, case.config, device, dtype, seed)
    return transformer, standins_flux.comfy_model(transformer, dtype)


@dataclass
class Conditioning:
    """One prompt's random embeddings: T5 context ``(B, T, D)`` and pooled CLIP-L ``(B, P)``, guidance 4.5."""

    context: torch.Tensor
    pooled: torch.Tensor
    guidance: float = GUIDANCE

    @property
    def comfy(self) -> list:
        """ComfyUI's CONDITIONING, with the guidance ``FluxGuidance`` puts there."""
        return [[self.context, {"pooled_output": self.pooled, "guidance": self.guidance}]]

    def bare_kwargs(self, device) -> dict:
        """Keyword arguments of ComfyUI's ``BaseModel.apply_model`` (``model_base.Flux.extra_conds``'s)."""
        return dict(c_crossattn=self.context.to(device), y=self.pooled.to(device),
                    guidance=torch.full((self.context.shape[0],), self.guidance, device=device))

    def reference_kwargs(self, device, dtype) -> dict:
        return dict(prompt_embeds=self.context.to(device, dtype), pooled=self.pooled.to(device, dtype))


def conditioning(batch: int, text_tokens: int, generator: torch.Generator, image_size=None) -> Conditioning:
    context = torch.randn(batch, text_tokens, CONTEXT_FEATURES, generator=generator)
    return Conditioning(context, torch.randn(batch, POOLED_FEATURES, generator=generator))


def reference_latents(transformer, schedule, sizes, inputs: dict, *, batch: int, seed: int,
                      device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The diffusers SwD loop (``harness.reference.flux``; model-space latents ``(B, 16, h, w)`` at
    ``sizes[-1]``) with guidance 4.5; ``inputs`` are :meth:`Conditioning.reference_kwargs`."""
    return reference_flux.swd_latents(transformer, schedule.sigmas, sizes, inputs["prompt_embeds"], inputs["pooled"],
                                      batch=batch, seed=seed, guidance=GUIDANCE, device=device, dtype=dtype)


def reference_attention(transformer) -> str:
    return type(transformer.transformer_blocks[0].attn.processor).__name__
