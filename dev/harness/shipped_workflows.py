"""The shipped workflow files (workflows/*.json and their API copies in workflows/api/)."""
from __future__ import annotations

import json

from .paths import WORKFLOWS

NAMES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))


def ui(name: str) -> dict:
    """The UI-format workflow ``workflows/<name>.json``."""
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def api(name: str) -> dict:
    """Its API-format copy ``workflows/api/<name>.json``."""
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
