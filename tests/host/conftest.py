"""The host tier: ComfyUI fixtures (``host``, ``server``) from the harness, and a LoRA folder."""
import pytest

from harness.fixtures import host, server  # noqa: F401  (pytest fixtures)


@pytest.fixture
def loras(host, tmp_path):  # noqa: F811  (host: the fixture imported above)
    """An empty folder (``tmp_path``) that ComfyUI lists LoRAs from during the test."""
    with host.model_folder("loras", tmp_path):
        yield tmp_path
