"""README.md and docs/*.md: links and anchors resolve, the workflow table is complete, the README's model
tables match the shipped workflows' model lists, the quoted diffusers example is the file, the README stays short.

Plain text and JSON only (no ComfyUI, no torch).
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
README_MAX_LINES = 300


def prose(text: str) -> str:
    """The text without fenced code blocks (their ``#`` lines are comments, their brackets code)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+)$", prose(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", prose(path.read_text()))


def test_the_pages_exist():
    names = {p.name for p in PAGES}
    assert {"README.md", "nodes.md", "workflows.md", "use-with.md", "diffusers.md", "testing.md", "compatibility.md",
            "troubleshooting.md", "speed-tools.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    found = [link for link in links(page) if not re.match(r"[a-z]+:", link)]
    assert found, "no relative links at all: the pattern is broken"
    for link in found:
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link} -> {path} does not exist"
        assert ROOT in path.parents or path == ROOT, f"{page.name}: {link} leaves the repository"
        if anchor:
            assert path.suffix == ".md", f"{page.name}: {link}: anchor into a non-Markdown file"
            assert anchor in anchors(path), f"{page.name}: #{anchor} is no heading of {path.name}"


def test_the_anchor_rule_sees_headings_not_code():
    page = ROOT / "docs" / "diffusers.md"
    assert "sd35" in anchors(page) and "real-model-pipe--stablediffusion3pipelinefrom_pretrainedstabilityai" \
        "stable-diffusion-35-large" not in anchors(page)
    assert "the-lora-two-files-in-one-folder" in anchors(README)


def test_the_workflow_table_lists_every_shipped_workflow():
    text = (ROOT / "docs" / "workflows.md").read_text()
    rows = re.findall(r"^\| `([\w.-]+)\.json` \|", text, re.M)
    assert len(rows) == len(set(rows)), "a workflow is listed twice"
    assert set(rows) == set(WORKFLOWS)
    assert len(WORKFLOWS) >= 18


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_workflow_names_in_the_text_are_shipped(page):
    named = set(re.findall(r"`(?:workflows/)?(swd-[\w.-]+?)(?:\.json)?`", page.read_text()))
    named = {n for n in named if not n.startswith(("swd-large-", "swd-medium-", "swd-sdxl/", "swd-standin"))
             and n not in {"swd-sdxl", "swd-scalewise"}}
    assert named <= set(WORKFLOWS), sorted(named - set(WORKFLOWS))


def _models(name: str) -> set[tuple[str, str]]:
    wf = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    return {(m["name"].split("/")[-1], m["directory"]) for n in wf["nodes"]
            for m in n.get("properties", {}).get("models", [])}


def test_the_readme_model_tables_match_the_workflows():
    """Each file → folder row of "Your first image" is a model of a shipped workflow, in that folder; and
    every model of each family's first workflow is in a row (SD3.5 Medium: with Large's text encoders)."""
    text = README.read_text()
    section = text[text.index("## Your first image"):text.index("## The four nodes")]
    rows = set()
    for files, folder in re.findall(r"^\| (.+?) \| `ComfyUI/models/(\w+)/[^`]*`[^|]*\|", section, re.M):
        for file in re.findall(r"`([^`]+)`", files):
            rows.add((file, folder))
    shipped = set().union(*(_models(n) for n in WORKFLOWS))
    assert rows - {r for r in rows if r[0] == "adapter_config.json"} <= shipped, sorted(rows - shipped)
    for first in ("swd-sd3.5-large-6-steps", "swd-sd3.5-medium-6-steps", "swd-flux1-dev-4-steps", "swd-sdxl-4-steps"):
        assert f"`{first}`" in section
        assert _models(first) <= rows, (first, sorted(_models(first) - rows))
    lora_rows = {r for r in rows if r[1] == "loras"}
    assert {f for f, _ in lora_rows} == {"adapter_model.safetensors", "adapter_config.json"}


def test_the_diffusers_page_quotes_the_example_file():
    """docs/diffusers.md quotes dev/diffusers_example.py (after its docstring) exactly, and its run command."""
    source = (ROOT / "dev" / "diffusers_example.py").read_text()
    body = source.split('"""', 2)[2].lstrip("\n")
    page = (ROOT / "docs" / "diffusers.md").read_text()
    blocks = re.findall(r"^```py\n(.*?)^```", page, re.M | re.S)
    assert body in blocks
    command = re.search(r"^    (PYTHONPATH=.*?diffusers_example\.py)", source, re.M).group(1)
    assert command in page


def test_the_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_the_scales_figure_is_small():
    png = ROOT / "docs" / "images" / "swd-scales.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 64 * 1024
