"""SD3/SD3.5 (MMDiT, MMDiT-X) for the bench: architectures, cases, FLOP model, models, reference."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.reference import sd3 as reference_sd3

from .family import Case, random_model
from .flops import FlopModel

NAME = "SD3"
#: Text tokens in SD3's joint attention as ComfyUI encodes a prompt: CLIP-L and CLIP-G side by
#: side in the feature dimension (77 tokens, zero-padded to 4096 features) followed by T5-XXL
#: (77 tokens minimum; longer prompts add more): 77 + 77 = 154 (comfy/text_encoders/sd3_clip.py).
#: diffusers' StableDiffusion3Pipeline pads T5 to max_sequence_length=256: 77 + 256 = 333.
TEXT_TOKENS = 154
LATENT_CHANNELS = 16
CONTEXT_FEATURES = 4096
POOLED_FEATURES = 2048
REFERENCE_LABEL = "diffusers loop: `SD3Transformer2DModel` + `FlowMatchLCMScheduler`"


def sd3_config(depth: int, dual_attention_layers=(), pos_embed_max_size: int = 192) -> dict:
    """A diffusers ``SD3Transformer2DModel`` config with SD3.5's layout.

    ComfyUI's MMDiT ties hidden size and head count to the block count (head dim 64,
    ``hidden = 64 * heads``, ``heads = depth``), as in every released SD3/SD3.5: so do we.
    """
    return dict(
        sample_size=128, patch_size=2, in_channels=LATENT_CHANNELS, num_layers=depth,
        attention_head_dim=64, num_attention_heads=depth, joint_attention_dim=CONTEXT_FEATURES,
        caption_projection_dim=64 * depth, pooled_projection_dim=POOLED_FEATURES, out_channels=LATENT_CHANNELS,
        pos_embed_max_size=pos_embed_max_size, qk_norm="rms_norm",
        dual_attention_layers=tuple(dual_attention_layers),
    )


#: stabilityai/stable-diffusion-3.5-large transformer: depth 38, hidden 2432, 38 heads.
SD35_LARGE = sd3_config(38, pos_embed_max_size=192)
#: stabilityai/stable-diffusion-3.5-medium transformer (MMDiT-X): depth 24, hidden 1536,
#: extra image self-attention in blocks 0..12.
SD35_MEDIUM = sd3_config(24, dual_attention_layers=range(13), pos_embed_max_size=384)

CPU_CASE = Case(
    "cpu-mmdit", "SD3-shaped MMDiT, depth 6, hidden 384 (6 heads), random weights",
    sd3_config(6), "SD3.5 Large, 6 steps", 512,
    note="Sized so that the whole CPU run takes a few minutes on 2 cores; at 512x512 its "
         "attention/linear FLOP mix (attention ~34%) is between SD3.5 Large's (~23%) and "
         "Medium's at 1024x1024.",
)
GPU_CASES = (
    Case("sd35-large", "SD3.5 Large architecture (random weights)", SD35_LARGE, "SD3.5 Large, 6 steps", 1024),
    Case("sd35-medium", "SD3.5 Medium architecture (MMDiT-X, random weights)", SD35_MEDIUM,
         "SD3.5 Medium, 6 steps", 1024),
)
TINY_CPU_CASE = Case("tiny", "tiny SD3-shaped MMDiT, depth 2, hidden 128", sd3_config(2),
                     "SD3.5 Large, 6 steps", 256)
TINY_GPU_CASES = (
    Case("tiny-large", "tiny SD3.5-Large-shaped MMDiT, depth 2, hidden 128", sd3_config(2),
         "SD3.5 Large, 6 steps", 256),
    Case("tiny-medium", "tiny SD3.5-Medium-shaped MMDiT-X, depth 2, hidden 128, dual attention in block 0",
         sd3_config(2, dual_attention_layers=(0,), pos_embed_max_size=64), "SD3.5 Medium, 6 steps", 256),
)
CASES = {"cpu": (CPU_CASE,), "gpu": GPU_CASES, "tiny-cpu": (TINY_CPU_CASE,), "tiny-gpu": TINY_GPU_CASES}


def describe(config: dict) -> str:
    dual = list(config["dual_attention_layers"]) or "none"
    return (f"hidden {config['num_attention_heads'] * 64}, depth {config['num_layers']}, MLP ratio 4, "
            f"dual-attention blocks {dual}")


def flop_model(cfg: dict) -> FlopModel:
    """The FLOP model of a diffusers ``SD3Transformer2DModel`` config (feed-forward ratio 4, as diffusers
    builds it): every linear layer's in x out per token of its stream, attention per block."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    depth = cfg["num_layers"]
    p = cfg["patch_size"]
    mlp = 4 * d  # diffusers' FeedForward(dim, mult=4)
    dual = {i for i in cfg.get("dual_attention_layers", ()) if 0 <= i < depth}
    block = 4 * d * d + 2 * d * mlp  # qkv + out projection + two MLP layers
    image = (p * p * cfg["in_channels"] * d + depth * block + len(dual) * 4 * d * d
             + d * p * p * cfg["out_channels"])
    text = cfg["joint_attention_dim"] * d + (depth - 1) * block + 3 * d * d  # last block: text qkv only
    sample = (256 * d + d * d) + (cfg["pooled_projection_dim"] * d + d * d)  # timestep and pooled embedders
    for i in range(depth):
        sample += (9 if i in dual else 6) * d * d  # image adaLN
        sample += (2 if i == depth - 1 else 6) * d * d  # text adaLN
    sample += 2 * d * d  # final adaLN
    return FlopModel(image, text, sample, 2 * depth * d, 2 * len(dual) * d, p)


def flop_model_of_comfy(mmdit) -> FlopModel:
    """The same model read off ComfyUI's MMDiT module (every Linear/Conv2d by the stream it runs on):
    the check that :func:`flop_model` describes the network ComfyUI actually runs."""
    image = text = sample = 0
    for name, mod in mmdit.named_modules():
        if isinstance(mod, torch.nn.Linear):
            macs = mod.in_features * mod.out_features
        elif isinstance(mod, torch.nn.Conv2d):  # patch embedding: one kernel application per token
            macs = mod.in_channels * mod.out_channels * math.prod(mod.kernel_size) // mod.groups
        else:
            continue
        if name.startswith(("t_embedder.", "y_embedder.")) or ".adaLN_modulation." in name:
            sample += macs
        elif name.startswith(("x_embedder.", "final_layer.")) or ".x_block." in name:
            image += macs
        elif name.startswith("context_embedder") or ".context_block." in name:
            text += macs
        else:
            raise ValueError(f"flop_model_of_comfy: do not know which tokens {name!r} runs on")
    joint = image_attn = 0
    for blk in mmdit.joint_blocks:
        joint += 2 * (blk.x_block.attn.qkv.out_features // 3)
        if getattr(blk.x_block, "x_block_self_attn", False):
            image_attn += 2 * (blk.x_block.attn2.qkv.out_features // 3)
    return FlopModel(image, text, sample, joint, image_attn, mmdit.patch_size)


def build_models(case: Case, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Random ``SD3Transformer2DModel`` on ``device`` and the same weights in ComfyUI (a ModelPatcher)."""
    from diffusers import SD3Transformer2DModel

    import comfy.sd

    transformer = random_model(SD3Transformer2DModel, case.config, device, dtype, seed)
    # diffusers key names; ComfyUI converts them. Copies: ComfyUI's converter writes some converted
    # weights (adaLN scale/shift swap) back into the tensors it is given (0.3.75,
    # model_detection.convert_diffusers_mmdit: `w = weight; w[:] = fun(weight)`), which would change
    # the diffusers model in place. On the CPU, so that the GPU holds no third copy.
    sd = {k: v.to("cpu", copy=True) for k, v in transformer.state_dict().items()}
    patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    del sd
    if patcher is None:
        raise RuntimeError(f"ComfyUI did not recognise the {case.key} state dict as a diffusion model")
    return transformer, patcher


@dataclass
class Conditioning:
    """One prompt's random embeddings: T5+CLIP context ``(B, T, 4096)`` and pooled CLIP ``(B, 2048)``."""

    context: torch.Tensor
    pooled: torch.Tensor

    @property
    def comfy(self) -> list:
        """ComfyUI's CONDITIONING."""
        return [[self.context, {"pooled_output": self.pooled}]]

    def bare_kwargs(self, device) -> dict:
        """Keyword arguments of ComfyUI's ``BaseModel.apply_model``."""
        return dict(c_crossattn=self.context.to(device), y=self.pooled.to(device))

    def reference_kwargs(self, device, dtype) -> dict:
        return dict(prompt_embeds=self.context.to(device, dtype), pooled=self.pooled.to(device, dtype))


def conditioning(batch: int, text_tokens: int, generator: torch.Generator, image_size=None) -> Conditioning:
    context = torch.randn(batch, text_tokens, CONTEXT_FEATURES, generator=generator)
    return Conditioning(context, torch.randn(batch, POOLED_FEATURES, generator=generator))


def reference_latents(transformer, schedule, sizes, inputs: dict, *, batch: int, seed: int,
                      device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The diffusers SwD loop (``harness.reference.sd3``; model-space latents ``(B, 16, h, w)`` at
    ``sizes[-1]``); ``inputs`` are :meth:`Conditioning.reference_kwargs`, moved to the device once,
    outside the timed run."""
    return reference_sd3.swd_latents(transformer, schedule.sigmas, sizes, inputs["prompt_embeds"], inputs["pooled"],
                                     batch=batch, seed=seed, device=device, dtype=dtype)


def reference_attention(transformer) -> str:
    return type(transformer.transformer_blocks[0].attn.processor).__name__
