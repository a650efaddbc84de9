"""The house rules of the import graph (``harness.import_graph``): no module of ``swd_core/``,
``nodes/`` or ``dev/`` takes part in an import circle, and none imports another module's
private (underscore) names. The synthetic trees show that the check finds what it must."""
from pathlib import Path

from harness import import_graph
from harness.paths import ROOT


def test_the_project_has_no_import_circles():
    cycles, _ = import_graph.check(ROOT)
    assert not cycles, "modules that import each other:\n" + import_graph.report(cycles, [])


def test_no_module_imports_another_modules_private_names():
    _, private = import_graph.check(ROOT)
    assert not private, "make these names public where another module needs them:\n" + import_graph.report([], private)


def test_the_check_reads_the_whole_tree():
    modules = {m.path for m in import_graph.find_modules(ROOT)}
    assert {"__init__.py", "swd_core/__init__.py", "swd_core/diffusers/common.py", "nodes/_api.py",
            "nodes/sampler.py", "dev/harness/paths.py", "dev/bench/cli.py", "dev/workflow_builders/write.py"} <= modules
    graph = import_graph.Graph(ROOT, import_graph.find_modules(ROOT))
    assert "swd_core/__init__.py" in graph.edges["nodes/sampler.py"]  # from .. import swd_core
    assert "nodes/_api.py" in graph.edges["nodes/sampler.py"]
    assert "swd_core/diffusers/common.py" in graph.edges["swd_core/diffusers/sdxl.py"]
    assert "dev/harness/paths.py" in graph.edges["dev/bench/cli.py"]


def test_the_diffusers_entry_point_has_the_shape_of_its_design():
    """``common`` imports no family; each family imports ``common`` and no other family; only the
    entry point (the package) imports the families."""
    edges = import_graph.Graph(ROOT, import_graph.find_modules(ROOT)).edges
    families = {f"swd_core/diffusers/{name}.py" for name in ("sd3", "flux", "sdxl")}
    common = "swd_core/diffusers/common.py"
    assert not edges[common] & (families | {"swd_core/diffusers/__init__.py"})
    for family in families:
        assert common in edges[family] and not edges[family] & families
    assert {m for m, imported in edges.items() if imported & families} == {"swd_core/diffusers/__init__.py"}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PACK = {
    "__init__.py": "from .nodes import entry\n",
    "nodes/__init__.py": "from ._api import io\nfrom .sampler import Sampler\n",
    "nodes/_api.py": "io = None\n",
    "nodes/sampler.py": "from .. import swd_core\nfrom ._api import io\nclass Sampler: ...\n",
    "swd_core/__init__.py": "from .run import run\n__version__ = '1'\n",
    "swd_core/common.py": "def shared(): ...\n",
    "swd_core/run.py": ("from .common import shared\nfrom . import common\nfrom .common import __doc__\n"
                        "def run(): ...\n"),
    "dev/harness/__init__.py": "",
    "dev/harness/paths.py": "ROOT = None\n",
    "dev/tool.py": "import nodes\nimport swd_core\nfrom harness.paths import ROOT\nfrom swd_core import __version__\n",
}


def test_a_tree_without_circles_passes(tmp_path):
    root = write_tree(tmp_path, PACK)
    assert import_graph.check(root) == ([], [])
    edges = import_graph.Graph(root, import_graph.find_modules(root)).edges
    assert edges["dev/tool.py"] == {"swd_core/__init__.py", "dev/harness/paths.py"}  # `nodes` there is ComfyUI's
    assert edges["swd_core/run.py"] == {"swd_core/common.py"}


def test_a_circle_is_found_with_its_path(tmp_path):
    """A circle through a function-level import and a relative import above the package."""
    root = write_tree(tmp_path, {
        **PACK,
        "swd_core/common.py": "def shared():\n    from .run import run\n    return run\n",
        "nodes/sampler.py": "from .. import swd_core\n",
        "swd_core/__init__.py": "from .run import run\n",
        "swd_core/run.py": "from .common import shared\nfrom ..nodes.sampler import x\n",
    })
    cycles, private = import_graph.check(root)
    assert private == []
    assert [c.path for c in cycles] == [["nodes/sampler.py", "swd_core/__init__.py", "swd_core/run.py",
                                         "nodes/sampler.py"]]
    assert cycles[0].modules == ["nodes/sampler.py", "swd_core/__init__.py", "swd_core/common.py", "swd_core/run.py"]
    text = import_graph.report(cycles, private)
    assert text == ("import circle: nodes/sampler.py -> swd_core/__init__.py -> swd_core/run.py -> nodes/sampler.py "
                    "(the same circle takes in swd_core/common.py)")


def test_a_circle_among_the_tools_is_found(tmp_path):
    root = write_tree(tmp_path, {
        **PACK,
        "dev/writer.py": "import family_a\n",
        "dev/family_a.py": "from writer import CONSTANT\n",
        "dev/harness/paths.py": "import harness.prompts\n",
        "dev/harness/prompts.py": "from .paths import ROOT\n",
    })
    cycles, _ = import_graph.check(root)
    assert [c.path for c in cycles] == [["dev/family_a.py", "dev/writer.py", "dev/family_a.py"],
                                        ["dev/harness/paths.py", "dev/harness/prompts.py", "dev/harness/paths.py"]]


def test_private_names_and_private_modules(tmp_path):
    root = write_tree(tmp_path, {
        **PACK,
        "swd_core/run.py": "from .common import _helper, shared\n",
        "dev/harness/paths.py": "from swd_core._impl import f\n",
        "swd_core/_impl.py": "def f(): ...\n",
        "swd_core/uses_impl.py": "from ._impl import f\n",  # its own package's private module: fine
    })
    cycles, private = import_graph.check(root)
    assert cycles == []
    assert [str(p) for p in private] == ["dev/harness/paths.py:1 imports the private module swd_core/_impl.py",
                                         "swd_core/run.py:1 imports _helper from swd_core/common.py"]
