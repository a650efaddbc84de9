"""The pack in a real ComfyUI server: it registers, documents itself, and a broken import is reported."""
import shutil
import subprocess
import sys

from harness.comfy_server import gpu_available
from harness.paths import COMFYUI, ROOT

OUR_NODES = {"SwDSchedule": "SWD_SCHEDULE", "SwDSampler": "LATENT", "SamplerSwD": "SAMPLER", "SwDLoraLoader": "MODEL"}


def test_nodes_register_with_docs(server):
    info = server.object_info()
    for node_id, first_output in OUR_NODES.items():
        assert node_id in info, f"{node_id} not registered; log:\n{server.log()[-3000:]}"
        node = info[node_id]
        assert node["output"][0] == first_output
        assert node["description"], node_id
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert "IMPORT FAILED" not in server.log() or "swd-scalewise" not in server.log().split("IMPORT FAILED", 1)[1][:300]


def test_input_names_are_the_public_contract(server):
    """Saved workflows depend on these ids and names: never rename, only add optional inputs."""
    expected = {
        "SwDSchedule": ({"preset", "scales", "sigmas"}, set()),
        "SwDSampler": ({"model", "positive", "negative", "latent_image", "schedule", "seed", "cfg", "upscale_method"},
                       {"denoise"}),
        "SamplerSwD": ({"schedule", "upscale_method"}, set()),
        "SwDLoraLoader": ({"model", "lora_name", "strength_model"}, set()),
    }
    info = server.object_info()
    for node_id, (required, optional) in expected.items():
        assert set(info[node_id]["input"]["required"]) == required
        assert set(info[node_id]["input"].get("optional", {})) >= optional


def test_broken_import_is_reported(tmp_path):
    """A pack that fails to import shows up as IMPORT FAILED in ComfyUI's log (not swallowed)."""
    broken = tmp_path / "custom_nodes" / "swd-broken"
    ignore = shutil.ignore_patterns(".venv", ".host", ".git", "tests", "dev", "__pycache__")
    shutil.copytree(ROOT, broken, ignore=ignore)
    (broken / "nodes" / "sampler.py").write_text("import this_module_does_not_exist\n")
    paths = tmp_path / "paths.yaml"
    paths.write_text(f"broken:\n    base_path: {tmp_path}\n    custom_nodes: custom_nodes\n")
    cmd = [sys.executable, "main.py", "--quick-test-for-ci", "--extra-model-paths-config", str(paths),
           "--disable-auto-launch", "--database-url", "sqlite:///:memory:", "--user-directory", str(tmp_path)]
    if not gpu_available():
        cmd.append("--cpu")
    out = subprocess.run(cmd, cwd=COMFYUI, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert "this_module_does_not_exist" in log
    assert any("IMPORT FAILED" in line and "swd-broken" in line for line in log.splitlines()), log[-3000:]
