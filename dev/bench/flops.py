"""The FLOP models of a forward, and the ratios they predict.

Two formulas behind one interface (:class:`AnyFlopModel`): :class:`FlopModel`, in image and text
tokens, for every token-based architecture (SD3's MMDiT, FLUX's DiT), and :class:`UNetFlopModel`,
per resolution level, for a UNet (SDXL). Their coefficients come from each family's module
(``sd3.flop_model``), derived there once from the config.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


def image_tokens(h: int, w: int, patch: int = 2) -> int:
    """Image tokens of a ``h x w`` latent: ``(h/2) * (w/2)`` for SD3 (ComfyUI pads to the patch)."""
    return math.ceil(h / patch) * math.ceil(w / patch)


class AnyFlopModel(Protocol):
    """What the bench asks of a FLOP model (:class:`FlopModel`, :class:`UNetFlopModel`)."""

    #: what every scale's latent side is rounded to (a DiT's patch; a UNet's downsampling factor)
    patch: int

    def flops(self, size: tuple[int, int], text_tokens: int, batch: int = 1) -> int:
        """FLOPs (2 x multiply-adds) of one forward of ``batch`` samples at latent ``size``."""

    def attention_share(self, size, text_tokens: int) -> float:
        """The attention matmuls' share of a forward's FLOPs at ``size``."""

    def tokens(self, size) -> int:
        """Image tokens of the model's (largest) attention at latent ``size``."""


@dataclass(frozen=True)
class FlopModel:
    """Multiply-adds of one transformer forward (one sample) for ``N`` image and ``T`` text tokens.

    ``macs(N, T) = image_token_macs*N + text_token_macs*T + sample_macs
    + joint_attention_width*(N+T)^2 + image_attention_width*N^2``

    Linear layers grow with their stream's tokens; joint attention (QK^T and AV, ``2 (N+T)^2 d``
    per block) with the square of all tokens; MMDiT-X's extra image self-attention with
    ``N^2``. Norms, activations and softmax are left out (elementwise, a few % of the time).
    FLOPs are ``2 * macs``.
    """

    image_token_macs: int
    text_token_macs: int
    sample_macs: int
    joint_attention_width: int
    image_attention_width: int
    patch: int = 2

    def macs(self, n: int, t: int) -> int:
        return (self.image_token_macs * n + self.text_token_macs * t + self.sample_macs
                + self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2)

    def tokens(self, size) -> int:
        return image_tokens(*size, self.patch)

    def flops(self, size: tuple[int, int], text_tokens: int, batch: int = 1) -> int:
        return 2 * batch * self.macs(self.tokens(size), text_tokens)

    def attention_share(self, size, text_tokens: int) -> float:
        n, t = self.tokens(size), text_tokens
        attn = self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2
        return attn / self.macs(n, t)


@dataclass(frozen=True)
class UNetFlopModel:
    """Multiply-adds of one UNet forward (one sample) for a ``h x w`` latent and ``T`` text tokens.

    Level ``l`` runs at the latent downsampled ``l`` times by 2 (``P_l = ceil(h/2^l) * ceil(w/2^l)``
    pixels, each a token of that level's attention):

    ``macs = sum_l (pixel_macs[l]*P_l + self_attention_width[l]*P_l^2
    + cross_attention_width[l]*P_l*T) + text_token_macs*T + sample_macs``

    Convolutions (``in x out x k^2`` per output pixel, at the level of their output: a
    downsampler's at the level below, an upsampler's at the level above) and the transformers'
    linear layers grow with the level's pixels; self-attention (QK^T and AV, ``2 P^2 d`` per
    block) with their square; cross-attention to the text (``2 P T d`` per block) with pixels x
    text tokens; cross-attention's key/value projections with the text tokens; the time and
    added (pooled text + size) embeddings and every ResBlock's embedding projection once per
    sample. Norms, activations, softmax and resampling are left out. FLOPs are ``2 * macs``.
    """

    pixel_macs: tuple[int, ...]
    self_attention_width: tuple[int, ...]
    cross_attention_width: tuple[int, ...]
    text_token_macs: int
    sample_macs: int
    patch: int = 4  # 2 ** (levels - 1): SDXL's three levels

    def level_pixels(self, size) -> list[int]:
        h, w = size
        pixels = []
        for _ in self.pixel_macs:
            pixels.append(h * w)
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        return pixels

    def attention_macs(self, size, t: int) -> int:
        return sum(s * p * p + c * p * t for s, c, p in zip(self.self_attention_width, self.cross_attention_width,
                                                            self.level_pixels(size), strict=True))

    def macs(self, size, t: int) -> int:
        linear = sum(m * p for m, p in zip(self.pixel_macs, self.level_pixels(size), strict=True))
        return linear + self.attention_macs(size, t) + self.text_token_macs * t + self.sample_macs

    def tokens(self, size) -> int:
        """Pixels of the first level with attention (SDXL: level 1, ``(h/2) * (w/2)``)."""
        first = next(i for i, s in enumerate(self.self_attention_width) if s)
        return self.level_pixels(size)[first]

    def flops(self, size: tuple[int, int], text_tokens: int, batch: int = 1) -> int:
        return 2 * batch * self.macs(size, text_tokens)

    def attention_share(self, size, text_tokens: int) -> float:
        return self.attention_macs(size, text_tokens) / self.macs(size, text_tokens)


def predicted_speedup(fm: AnyFlopModel, sizes, steps_full: int, text_tokens: int) -> float:
    """FLOPs of ``steps_full`` forwards at the final size over the FLOPs of the scale-wise steps."""
    return steps_full * fm.flops(sizes[-1], text_tokens) / sum(fm.flops(s, text_tokens) for s in sizes)


def token_power_ratio(sizes, power: int, steps_full: int | None = None, text_tokens: int = 0,
                      patch: int = 2, tokens: Callable[[tuple[int, int]], int] | None = None) -> float:
    """The same ratio for a cost of ``(N + text_tokens) ** power``: ``power=1`` linear layers,
    ``power=2`` attention. With ``text_tokens=0`` these are the image-token-only figures. ``N``:
    ``tokens(size)`` (a FLOP model's :meth:`~AnyFlopModel.tokens`), default the ``patch`` x ``patch`` patches."""
    steps_full = len(sizes) if steps_full is None else steps_full
    count = tokens or (lambda s: image_tokens(*s, patch))
    cost = [(count(s) + text_tokens) ** power for s in sizes]
    return steps_full * cost[-1] / sum(cost)
