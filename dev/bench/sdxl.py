"""SDXL (UNet, ε-prediction on DDPM) for the bench: architectures, cases, FLOP model, models, reference."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.reference import sdxl as reference_sdxl
from harness.standins import sdxl as standins_sdxl

from .family import Case, random_model
from .flops import UNetFlopModel

NAME = "SDXL"
#: Text tokens in SDXL's cross-attention: CLIP-L and OpenCLIP-G side by side in the feature
#: dimension (768 + 1280 = 2048), 77 tokens for a prompt of up to 75 (ComfyUI's SDXL CLIP and
#: diffusers' StableDiffusionXLPipeline alike; longer prompts add chunks of 77).
TEXT_TOKENS = 77
LATENT_CHANNELS = 4
CONTEXT_FEATURES = 2048
POOLED_FEATURES = standins_sdxl.POOLED_FEATURES  # 1280, OpenCLIP-G's projection
ADM_FEATURES = standins_sdxl.ADM_FEATURES  # 2816: pooled 1280 + six 256-wide size embeddings
#: the full-step baseline: 30 Euler steps on ComfyUI's "normal" scheduler (its KSampler's default,
#: the usual SDXL run: 25-30 steps)
BASELINE_STEPS = 30
BASELINE_SCHEDULER = "normal"
#: how the report names the schedule's values (SDXL's presets are DDPM times, not noise levels)
SCHEDULE_VALUES = "DDPM times t/1000"
REFERENCE_LABEL = "diffusers loop: `UNet2DConditionModel` + `DDPMScheduler` tables"


def sdxl_config(channels, depths, head_dim: int = 64, context: int = CONTEXT_FEATURES) -> dict:
    """A diffusers ``UNet2DConditionModel`` config with SDXL base's layout: no attention at the first
    level (``DownBlock2D``/``UpBlock2D``), ``depths[i]`` transformer blocks per attention at level
    ``i`` (decoder and middle block alike), heads of ``head_dim`` channels (``attention_head_dim``
    is diffusers' legacy name for the head count), two ResBlocks per level, linear projections,
    ``text_time`` added conditioning of 2816 = pooled 1280 + 6 x 256."""
    levels = len(channels)
    return dict(
        sample_size=128, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        block_out_channels=tuple(channels), layers_per_block=2, transformer_layers_per_block=tuple(depths),
        attention_head_dim=tuple(c // head_dim for c in channels), cross_attention_dim=context,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=ADM_FEATURES, norm_num_groups=32,
    )


#: stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the keys that differ from diffusers'
#: defaults): 320/640/1280 channels, 1/2/10 transformer blocks (none used at level 0), 5/10/20 heads
#: of 64, context 2048. About 2.57 G parameters.
SDXL_BASE = sdxl_config((320, 640, 1280), (1, 2, 10))

PRESET = "SDXL, 4 steps"
CPU_CASE = Case(
    "cpu-sdxl", "SDXL-shaped UNet, channels 64/128/256, transformer depths 0/1/2, random weights",
    sdxl_config((64, 128, 256), (1, 1, 2)), PRESET, 512, family="sdxl",
    note="Sized so that the whole CPU run takes a few minutes on 2 cores; SDXL base's layout (no attention at "
         "the first level, deeper transformers at the deepest level, heads of 64, context 2048, pooled 1280 + "
         "size conditioning 2816); ComfyUI builds it as `model_base.SDXL` from the explicit config, as "
         "`harness.standins.sdxl.comfy_model` does (its detection knows SDXL only at full size).",
)
GPU_CASES = (Case("sdxl-base", "SDXL base 1.0 architecture (random weights)", SDXL_BASE, PRESET, 1024,
                  family="sdxl"),)
TINY_CASE = Case("tiny-sdxl", "tiny SDXL-shaped UNet, channels 32/32/64, transformer depths 0/1/2",
                 sdxl_config((32, 32, 64), (1, 1, 2), head_dim=32), PRESET, 256, family="sdxl")
CASES = {"cpu": (CPU_CASE,), "gpu": GPU_CASES, "tiny-cpu": (TINY_CASE,), "tiny-gpu": (TINY_CASE,)}


def _per_level(value, levels: int) -> list:
    return list(value) if isinstance(value, list | tuple) else [value] * levels


def _attention_depths(cfg: dict) -> list[int]:
    """Transformer blocks per attention at each level (0 where the level has none)."""
    levels = len(cfg["block_out_channels"])
    depths = _per_level(cfg.get("transformer_layers_per_block", 1), levels)
    return [d if kind.startswith("CrossAttn") else 0 for kind, d in zip(cfg["down_block_types"], depths, strict=True)]


def describe(config: dict) -> str:
    heads = _per_level(config["attention_head_dim"], len(config["block_out_channels"]))
    head_dim = {c // h for c, h, d in zip(config["block_out_channels"], heads, _attention_depths(config)) if d}
    return (f"channels {'/'.join(map(str, config['block_out_channels']))}, "
            f"transformer blocks per attention {'/'.join(map(str, _attention_depths(config)))} (middle block: "
            f"{_attention_depths(config)[-1]}), heads of {'/'.join(map(str, sorted(head_dim)))}, "
            f"{config['layers_per_block']} ResBlocks per level, context {config['cross_attention_dim']}, "
            f"added conditioning {config['projection_class_embeddings_input_dim']}")


def flop_model(cfg: dict) -> UNetFlopModel:
    """The FLOP model of a diffusers ``UNet2DConditionModel`` config with SDXL's layout, built block by
    block as diffusers builds the UNet (``unet_2d_condition.py``: down blocks, middle block, up blocks
    with their skip channels).

    Per output pixel of its level: a 3x3 convolution ``9 in out``, a ResBlock's 1x1 shortcut ``in out``
    (when the widths differ), a transformer's projections ``2 C^2`` and per block self-attention's
    q/k/v/out ``4 C^2``, cross-attention's q/out ``2 C^2`` and the GEGLU feed-forward ``12 C^2``; per
    block self-attention ``2 C`` (x pixels^2) and cross-attention ``2 C`` (x pixels x text tokens); per
    text token cross-attention's k/v ``2 context C``; per sample the time and added embeddings and
    every ResBlock's embedding projection.
    """
    channels = list(cfg["block_out_channels"])
    levels = len(channels)
    layers = _per_level(cfg["layers_per_block"], levels)
    depths = _attention_depths(cfg)
    heads = _per_level(cfg.get("num_attention_heads") or cfg["attention_head_dim"], levels)
    context = cfg["cross_attention_dim"]
    embed = cfg.get("time_embedding_dim") or 4 * channels[0]
    pixel, self_attn, cross_attn = [0] * levels, [0] * levels, [0] * levels
    text = 0
    sample = channels[0] * embed + embed * embed  # time embedding
    if cfg.get("addition_embed_type") == "text_time":
        sample += cfg["projection_class_embeddings_input_dim"] * embed + embed * embed

    def resnet(level, c_in, c_out):
        nonlocal sample
        pixel[level] += 9 * c_in * c_out + 9 * c_out * c_out + (c_in * c_out if c_in != c_out else 0)
        sample += embed * c_out

    def transformer(level, c, depth, n_heads):
        nonlocal text
        if not depth:
            return
        inner = n_heads * (c // n_heads)
        pixel[level] += 2 * c * inner + depth * (6 * c * inner + 12 * c * c)
        self_attn[level] += depth * 2 * inner
        cross_attn[level] += depth * 2 * inner
        text += depth * 2 * context * inner

    pixel[0] += 9 * cfg["in_channels"] * channels[0]  # conv_in
    c_out = channels[0]
    for i in range(levels):  # down blocks
        c_in, c_out = c_out, channels[i]
        for j in range(layers[i]):
            resnet(i, c_in if j == 0 else c_out, c_out)
            transformer(i, c_out, depths[i], heads[i])
        if i < levels - 1:
            pixel[i + 1] += 9 * c_out * c_out  # stride-2 downsampler: its output is the next level's
    last = levels - 1  # middle block: ResBlock, transformer, ResBlock
    resnet(last, channels[-1], channels[-1])
    transformer(last, channels[-1], depths[-1], heads[-1])
    resnet(last, channels[-1], channels[-1])
    rev, rev_layers, rev_depths, rev_heads = channels[::-1], layers[::-1], depths[::-1], heads[::-1]
    c_out = rev[0]
    for i in range(levels):  # up blocks, deepest first
        level = last - i
        prev, c_out = c_out, rev[i]
        skip_last = rev[min(i + 1, last)]
        n = rev_layers[i] + 1
        for j in range(n):
            skip = skip_last if j == n - 1 else c_out
            resnet(level, (prev if j == 0 else c_out) + skip, c_out)
            transformer(level, c_out, rev_depths[i], rev_heads[i])
        if level > 0:
            pixel[level - 1] += 9 * c_out * c_out  # upsampler: nearest x2, then a 3x3 conv at the level above
    pixel[0] += 9 * channels[0] * cfg["out_channels"]  # conv_out
    return UNetFlopModel(tuple(pixel), tuple(self_attn), tuple(cross_attn), text, sample, 2 ** last)


def flop_model_of_comfy(unet) -> UNetFlopModel:
    """The same model read off ComfyUI's ``openaimodel.UNetModel``: every Conv2d and Linear at the level
    whose resolution it runs at (walking the input blocks down, the middle block, the output blocks up;
    a ``Downsample``'s convolution at the level below, an ``Upsample``'s at the level above), every
    Linear by what it runs on (pixels, text tokens or once per sample), attention widths from each
    transformer block's query projections: the check that :func:`flop_model` describes the network
    ComfyUI actually runs."""
    from comfy.ldm.modules.attention import BasicTransformerBlock
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

    levels = len(unet.channel_mult)
    pixel, self_attn, cross_attn = [0] * levels, [0] * levels, [0] * levels
    text = sample = 0

    def macs(mod) -> int:
        if isinstance(mod, torch.nn.Linear):
            return mod.in_features * mod.out_features
        k = 1
        for s in mod.kernel_size:
            k *= s
        return mod.in_channels * mod.out_channels * k // mod.groups

    def count(block, level):
        nonlocal text, sample
        for child in block:
            at = level - 1 if isinstance(child, Upsample) else level + 1 if isinstance(child, Downsample) else level
            for name, mod in child.named_modules():
                if isinstance(mod, BasicTransformerBlock):
                    self_attn[at] += 2 * mod.attn1.to_q.out_features
                    cross_attn[at] += 2 * mod.attn2.to_q.out_features
                if not isinstance(mod, torch.nn.Linear | torch.nn.Conv2d):
                    continue
                if ".emb_layers." in f".{name}":
                    sample += macs(mod)
                elif name.endswith(("attn2.to_k", "attn2.to_v")):
                    text += macs(mod)
                else:
                    pixel[at] += macs(mod)

    for mod in (*unet.time_embed.modules(), *unet.label_emb.modules()):
        if isinstance(mod, torch.nn.Linear):
            sample += macs(mod)
    level = 0
    for block in unet.input_blocks:
        count(block, level)
        level += any(isinstance(child, Downsample) for child in block)
    count(unet.middle_block, level)
    for block in unet.output_blocks:
        count(block, level)
        level -= any(isinstance(child, Upsample) for child in block)
    count(unet.out, 0)
    return UNetFlopModel(tuple(pixel), tuple(self_attn), tuple(cross_attn), text, sample, 2 ** (levels - 1))


def build_models(case: Case, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Random ``UNet2DConditionModel`` on ``device`` and the same weights in ComfyUI's ``model_base.SDXL``
    (a ModelPatcher), built from the explicit config by ``harness.standins.sdxl.comfy_model``
    (``comfy_unet_config``, ``comfy_state_dict``: ComfyUI's own SDXL model class and key map)."""
    from diffusers import UNet2DConditionModel

    unet = random_model(UNet2DConditionModel, case.config, device, dtype, seed)
    # ComfyUI's module is built on the CPU and loads copies of the weights (load_state_dict); its
    # ModelPatcher moves it to the GPU when a sampler first needs it
    patcher = standins_sdxl.comfy_model(unet, dtype)
    return unet, patcher


@dataclass
class Conditioning:
    """One prompt's random embeddings: CLIP-L + OpenCLIP-G context ``(B, T, 2048)``, pooled OpenCLIP-G
    ``(B, 1280)``, and the image size SDXL's added conditioning embeds (original = target, no crop)."""

    context: torch.Tensor
    pooled: torch.Tensor
    image_size: tuple[int, int]  # (height, width) in pixels

    @property
    def comfy(self) -> list:
        """ComfyUI's CONDITIONING (``CLIPTextEncode``'s: ComfyUI's samplers add the latent's size x 8)."""
        return [[self.context, {"pooled_output": self.pooled}]]

    def adm(self) -> torch.Tensor:
        """``model_base.SDXL.encode_adm``'s vector ``(B, 2816)``: pooled text, then the 256-wide embeddings
        of height, width, crop top, crop left, target height, target width (ComfyUI's ``Timestep``)."""
        from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep

        h, w = self.image_size
        embed = Timestep(256)
        flat = torch.cat([embed(torch.Tensor([v])) for v in (h, w, 0, 0, h, w)]).flatten()
        return torch.cat([self.pooled, flat.unsqueeze(0).repeat(self.pooled.shape[0], 1)], dim=1)

    def bare_kwargs(self, device) -> dict:
        """Keyword arguments of ComfyUI's ``BaseModel.apply_model`` (what ``model_base.SDXL.extra_conds`` gives)."""
        return dict(c_crossattn=self.context.to(device), y=self.adm().to(device))

    def reference_kwargs(self, device, dtype) -> dict:
        return dict(prompt_embeds=self.context.to(device, dtype), pooled=self.pooled.to(device, dtype))


def conditioning(batch: int, text_tokens: int, generator: torch.Generator,
                 image_size: tuple[int, int] = (1024, 1024)) -> Conditioning:
    context = torch.randn(batch, text_tokens, CONTEXT_FEATURES, generator=generator)
    return Conditioning(context, torch.randn(batch, POOLED_FEATURES, generator=generator), tuple(image_size))


def reference_latents(unet, schedule, sizes, inputs: dict, *, batch: int, seed: int,
                      device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The diffusers SwD loop (``harness.reference.sdxl``: the preset's DDPM times, ε -> x0, bicubic,
    ``DDPMScheduler.add_noise``; UNet-space latents ``(B, 4, h, w)`` at ``sizes[-1]``); ``inputs`` are
    :meth:`Conditioning.reference_kwargs`. Its size conditioning is the final size, as ComfyUI's."""
    return reference_sdxl.swd_latents(unet, schedule.sigmas, sizes, inputs["prompt_embeds"], inputs["pooled"],
                                      batch=batch, seed=seed, device=device, dtype=dtype)


def reference_attention(unet) -> str:
    return type(next(iter(unet.attn_processors.values()))).__name__
