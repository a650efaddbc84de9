"""Write (or ``--check``) the shipped workflow files from :func:`workflow_builders.build_all`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.paths import ROOT
from harness.paths import WORKFLOWS as OUT_DIR

from . import build_all

API_DIR = OUT_DIR / "api"


def render() -> dict[Path, str]:
    """Every file the builders write, path -> text."""
    files = {}
    for name, graph in build_all().items():
        files[OUT_DIR / f"{name}.json"] = json.dumps(graph.ui(), indent=2, ensure_ascii=False) + "\n"
        files[API_DIR / f"{name}.json"] = json.dumps(graph.api(), indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 scripts/dev.py workflows",
                                     description="Write the shipped workflows (workflows/ and workflows/api/).")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files = render()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    extra = [p for d in (OUT_DIR, API_DIR) if d.exists() for p in d.glob("*.json") if p not in files]
    if args.check:
        for p in stale + extra:
            print(f"out of date: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0
