"""The host tier: ComfyUI fixtures (``host``, ``server``) from the harness, a LoRA folder, a hint image."""
import pytest
import torch

from harness.fixtures import host, server  # noqa: F401  (pytest fixtures)


@pytest.fixture
def loras(host, tmp_path):  # noqa: F811  (host: the fixture imported above)
    """An empty folder (``tmp_path``) that ComfyUI lists LoRAs from during the test."""
    with host.model_folder("loras", tmp_path):
        yield tmp_path


@pytest.fixture(scope="module")
def hint_image():
    """A ControlNet hint, a ComfyUI IMAGE ``[1, 200, 280, 3]`` in [0, 1]: smooth shapes plus some noise, of
    another aspect ratio than the tests' latents (ComfyUI's centre crop of the hint is exercised)."""
    g = torch.Generator().manual_seed(5)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 200), torch.linspace(-1, 1, 280), indexing="ij")
    rgb = torch.stack([(x * 3).sin(), (y * 5).cos(), x * y], -1) * 0.4 + 0.5
    return (rgb + 0.1 * torch.rand(200, 280, 3, generator=g)).clamp(0, 1).unsqueeze(0)


@pytest.fixture(autouse=True)
def release_memory(host):  # noqa: F811
    """After every test, what it loaded goes (the CI machine has 24 GiB; the FLUX and SDXL file stand-ins
    are several GB each once ComfyUI has loaded them)."""
    yield
    host.release_memory()
