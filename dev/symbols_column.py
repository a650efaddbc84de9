"""Record the running host's column in tests/host/comfy_symbols.toml, from a run of its checks.

    python3 scripts/dev.py symbols --host 0.33            # write the column v0_33_0
    python3 scripts/dev.py symbols --host 0.33 --check    # fail if the file's column is not what a run gives

Each entry is checked on the running ComfyUI with the test's own checker
(``tests/host/test_comfy_symbols.py``: ``check``), and its definition is located there: the column
``v<version>_run`` (``comfyui_version.py``, dots as underscores) gets ``"passes: FILE:LINE"`` or
``"FAILS: <the checker's message>"``, one line after the entry's ``v0_3_75`` line (an older line of the
same column is replaced). The file is data with comments, so it is edited line by line, not re-dumped.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
from pathlib import Path

from harness import paths
from harness.comfy_host import Host

SYMBOLS_TEST = paths.ROOT / "tests" / "host" / "test_comfy_symbols.py"


def load_checker():
    spec = importlib.util.spec_from_file_location("comfy_symbols_checker", SYMBOLS_TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def where(checker, entry: dict) -> str:
    """FILE:LINE (relative to the ComfyUI root) of what the entry names, or of the function it reads."""
    name = entry.get("in") or entry.get("assigned_in") or entry["name"]
    try:
        _, obj = checker.resolve(name)
        obj = inspect.unwrap(obj)
        if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
            obj = checker.resolve(name.rsplit(".", 1)[0])[1]  # an attribute: where its owner is defined
        if inspect.ismodule(obj) and getattr(obj, "__file__", None) is None:  # a namespace package
            path, line, suffix = Path(list(obj.__path__)[0]), 0, "/ (package)"
        else:
            path, suffix = Path(inspect.getsourcefile(obj)), ""
            line = 0 if inspect.ismodule(obj) else inspect.getsourcelines(obj)[1]
    except (TypeError, OSError, checker.SymbolMismatch):
        return "?"
    try:
        rel = path.resolve().relative_to(paths.COMFYUI.resolve()).as_posix()
    except ValueError:
        rel = path.name
    return (f"{rel}:{line}" if line else rel) + suffix


def column(checker) -> dict[str, str]:
    out = {}
    for entry in checker.SYMBOLS:
        try:
            checker.check(entry)
            out[entry["name"]] = f"passes: {where(checker, entry)}"
        except checker.SymbolMismatch as e:
            out[entry["name"]] = f"FAILS: {e}"
    return out


def rewrite(text: str, key: str, values: dict[str, str]) -> str:
    lines, out, name = text.splitlines(), [], None
    for line in lines:
        if line.startswith(f"{key} = "):
            continue  # replaced below
        out.append(line)
        m = re.match(r'^name = "(.+)"$', line)
        if m:
            name = m.group(1)
        if line.startswith("v0_3_75 = ") and name in values:
            value = values[name].replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'{key} = "{value}"')
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the recorded column differs from this run")
    args = ap.parse_args(argv)
    Host()  # ComfyUI set up as the tests set it up (the pack loaded), before any symbol is imported
    checker = load_checker()
    key = "v" + paths.comfyui_version().replace(".", "_") + "_run"
    values = column(checker)
    old = checker.DATA.read_text(encoding="utf-8")
    new = rewrite(old, key, values)
    failing = sum(v.startswith("FAILS") for v in values.values())
    print(f"ComfyUI {paths.comfyui_version()}: {len(values) - failing} of {len(values)} symbols pass (column {key})")
    if args.check:
        if new != old:
            print(f"{checker.DATA.name}: column {key} is not what this run gives; run without --check")
            return 1
        return 0
    checker.DATA.write_text(new, encoding="utf-8")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
