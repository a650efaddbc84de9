"""Write (or ``--check``) the shipped workflow files from :func:`workflow_builders.build_all`: the UI and API
JSON, each workflow's template thumbnail ``workflows/<name>.jpg`` and the template browser's card order
``web/templates.json`` (see ``templates``)."""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from harness.paths import ROOT
from harness.paths import WORKFLOWS as OUT_DIR

from . import build_all
from .templates import ORDER_FILE, order_json, thumbnails

API_DIR = OUT_DIR / "api"
#: a thumbnail on disk is current when, in every 16x16 block, its pixels are within this mean difference of the
#: drawn one's (JPEG encoders differ a little between Pillow versions; a changed line of text differs far more)
THUMBNAIL_TOLERANCE = 6.0


def render() -> dict[Path, str]:
    """Every JSON file the builders write, path -> text."""
    files = {}
    for name, graph in build_all().items():
        files[OUT_DIR / f"{name}.json"] = json.dumps(graph.ui(), indent=2, ensure_ascii=False) + "\n"
        files[API_DIR / f"{name}.json"] = json.dumps(graph.api(), indent=2, ensure_ascii=False) + "\n"
    files[ORDER_FILE] = order_json()
    return files


def render_thumbnails() -> dict[Path, bytes]:
    """Every thumbnail, path -> JPEG bytes."""
    return {OUT_DIR / f"{name}.jpg": jpeg for name, jpeg in thumbnails(build_all()).items()}


def pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)


def thumbnail_is_current(path: Path, jpeg: bytes) -> bool:
    if not path.exists():
        return False
    try:
        on_disk = pixels(path.read_bytes())
    except OSError:
        return False
    drawn = pixels(jpeg)
    if on_disk.shape != drawn.shape:
        return False
    h, w, _ = drawn.shape
    blocks = np.abs(on_disk - drawn)[: h // 16 * 16, : w // 16 * 16].reshape(h // 16, 16, w // 16, 16, 3)
    return float(blocks.mean(axis=(1, 3, 4)).max()) <= THUMBNAIL_TOLERANCE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 scripts/dev.py workflows",
                                     description="Write the shipped workflows (workflows/ and workflows/api/).")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files: dict[Path, str | bytes] = dict(render())
    images = render_thumbnails()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    stale += [p for p, jpeg in images.items() if not thumbnail_is_current(p, jpeg)]
    files.update(images)
    extra = [p for d in (OUT_DIR, API_DIR) if d.exists() for pattern in ("*.json", "*.jpg")
             for p in d.glob(pattern) if p not in files]
    if args.check:
        for p in stale + extra:
            print(f"out of date: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(files[p], bytes):
            p.write_bytes(files[p])
        else:
            p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0
