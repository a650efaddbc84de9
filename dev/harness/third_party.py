"""Third-party custom nodes the development host installs the way a user does: a copy in ``custom_nodes``.

The snapshots live outside the repository, in ``../shared/third_party/`` beside the checkout (CI lays
``shared/`` there, read-only; ``SWD_THIRD_PARTY`` names another folder). They are copied into
``.host/custom_nodes/<name>`` (never imported from ``shared/``, never part of the pack); the copy is
redone when the snapshot's files change. Stdlib only (``scripts/dev.py`` imports this before the venv).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from . import paths

#: custom-node folders installed into the development host, when the snapshot is there
CUSTOM_NODES = ("ComfyUI-GGUF",)
ENV = "SWD_THIRD_PARTY"
STAMP = ".swd-copied-from"


def source_dir() -> Path:
    env = os.environ.get(ENV)
    return Path(env).resolve() if env else paths.ROOT.parent / "shared" / "third_party"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def installed(name: str) -> Path | None:
    """``.host/custom_nodes/<name>`` if setup copied it there, else None."""
    dst = paths.HOST / "custom_nodes" / name
    return dst if (dst / STAMP).exists() else None


def install(log=print) -> list[Path]:
    """Copy each of `CUSTOM_NODES` found in `source_dir` into ``.host/custom_nodes`` (idempotent)."""
    done = []
    for name in CUSTOM_NODES:
        src = source_dir() / name
        dst = paths.HOST / "custom_nodes" / name
        if not src.is_dir():
            log(f"third-party custom node {name}: no snapshot at {src} (set {ENV}); its tests will skip")
            continue
        stamp = f"{src}\n{_digest(src)}\n"
        if (dst / STAMP).exists() and (dst / STAMP).read_text() == stamp:
            done.append(dst)
            continue
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        for p in [dst, *dst.rglob("*")]:  # the snapshot may be read-only: the copy is ours
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        (dst / STAMP).write_text(stamp)
        log(f"third-party custom node {name}: copied {src} -> {dst}")
        done.append(dst)
    return done
