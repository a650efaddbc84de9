"""Draw docs/images/swd-scales.png: the six latent sizes of the "SD3.5 Large, 6 steps" preset, to scale.

    .venv/bin/python dev/make_scales_figure.py      # from the pack's folder; rewrites the PNG

Each square is one step's latent, drawn with its side proportional to the latent size (the preset's scales at
1024x1024, pixels = latent x 8). The percentages are arithmetic, not timings: the step's latent pixels (so the
model's tokens) as a share of the final step's. The schedule values come from ``swd_core.PRESETS``.
"""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

import swd_core

PRESET = "SD3.5 Large, 6 steps"
OUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "swd-scales.png"
PX_PER_LATENT = 1.5  # drawing pixels per latent pixel: the 128-latent square is 192 px wide
GAP, MARGIN, TOP = 22, 16, 46
INK, BOX, FILL, GREY = (30, 30, 30), (40, 90, 160), (214, 228, 245), (110, 110, 110)


def main() -> None:
    preset = swd_core.PRESETS[PRESET]
    scales, sigmas = list(preset.scales), list(preset.sigmas)
    sides = [round(s * PX_PER_LATENT) for s in scales]
    width = 2 * MARGIN + sum(sides) + GAP * (len(sides) - 1)
    height = TOP + max(sides) + 78
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    total = sum(s * s for s in scales) / scales[-1] ** 2
    draw.text((MARGIN, 8), f'SwD preset "{PRESET}" at 1024x1024 px: every step runs at a larger latent '
              "(squares to scale)", fill=INK, font=font)
    draw.text((MARGIN, 25), "each step predicts the clean image, enlarges it to the next size and adds fresh noise; "
              f"the six steps together hold the latent pixels of {total:.1f} final-size steps", fill=GREY, font=small)
    x, base = MARGIN, TOP + max(sides)
    for i, (scale, side) in enumerate(zip(scales, sides)):
        draw.rectangle([x, base - side, x + side, base], fill=FILL, outline=BOX, width=2)
        share = scale * scale / scales[-1] ** 2
        lines = [f"step {i + 1}", f"{scale}x{scale} latent", f"{scale * 8} px", f"sigma {sigmas[i]:g}",
                 f"{share:.0%} of final"]
        for j, line in enumerate(lines):
            draw.text((x, base + 6 + 14 * j), line, fill=INK if j < 3 else GREY, font=small)
        if i + 1 < len(sides):
            ax, ay = x + side + 4, base - side // 2
            draw.line([ax, ay, ax + GAP - 8, ay], fill=BOX, width=2)
            draw.polygon([(ax + GAP - 8, ay - 4), (ax + GAP - 8, ay + 4), (ax + GAP - 3, ay)], fill=BOX)
        x += side + GAP
    OUT.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=32).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {width}x{height})")


if __name__ == "__main__":
    main()
