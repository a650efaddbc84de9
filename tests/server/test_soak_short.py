"""A short soak (dev/soak.py) in the test suite: 12 queued prompts, two interrupted, on one server."""
import json

import pytest

import soak


@pytest.mark.slow
def test_short_soak_passes(tmp_path):
    report = tmp_path / "soak.json"
    code = soak.main(["--prompts", "12", "--workdir", str(tmp_path / "server"), "--json", str(report)])
    summary = json.loads(report.read_text())
    assert code == 0, summary["problems"]
    # The checks ran: prompts finished and were interrupted, references compared, memory read.
    assert summary["done"] >= 10 and summary["interrupted"] >= 1 and summary["failed"] == 0
    assert summary["repeated_prompts_identical"] >= 1
    assert summary["base_latent_identical"] and summary["lora_latent_identical"] and summary["lora_pixels_identical"]
    assert summary["rss_growth_mib"] <= summary["rss_bound_mib"]
