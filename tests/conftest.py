"""Shared by every tier: nothing here imports ComfyUI (the unit tier runs without it).

``dev/`` and ``.host/pylib`` are on ``sys.path`` (``pytest.ini``), so ``harness`` and
``swd_core`` import as packages; the repository root never is (the pack's ``nodes/`` would
shadow ComfyUI's ``nodes``). The ComfyUI fixtures (``host``, ``server``) live in
``harness.fixtures``, loaded by the conftest of each tier that uses ComfyUI.
"""
import pytest


@pytest.fixture(scope="session")
def core():
    """The ``swd_core`` package (host-independent; no ComfyUI)."""
    import swd_core

    return swd_core
