"""Every ComfyUI symbol the pack uses at run time, checked on the ComfyUI the tests run on.

The list is ``comfy_symbols.toml`` beside this file (data, read with ``tomllib``; its header says
what each field means). One test per entry imports the symbol from the running host and checks
it the way the pack uses it: the call the pack makes binds to the host's signature (positional
parameters by name, in order, so a swapped ``width``/``height`` shows), attributes exist,
attributes the pack reads off host objects are still assigned where the host assigns them, and
what the host hands the pack (``extra_args``, the callback dict) still has the keys the pack
reads. So a newer host shows each breakage as one failing test named after the symbol.

Two more tests keep the list honest: an AST scan of the pack's source fails on a
``comfy*``/``comfy_execution``/``folder_paths``/``latent_preview``/``comfy_api`` name that is not listed (also such
a name written as a string, as ``swd_core`` names host classes), and on a listed name the pack
no longer uses. The last tests feed the checker wrong entries and
sources and assert that each is reported.
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

DATA = Path(__file__).with_name("comfy_symbols.toml")
ROOT = Path(__file__).resolve().parents[2]
PACK_SOURCES = [ROOT / "__init__.py", *sorted((ROOT / "nodes").glob("*.py"))]
# host-independent code names host classes only as strings ("comfy.model_base.SD3")
STRING_SOURCES = [*PACK_SOURCES, *sorted((ROOT / "swd_core").glob("*.py"))]
DOTTED_HOST_NAME = re.compile(r"(comfy|comfy_api|comfy_execution|folder_paths|latent_preview)(\.\w+)+")
HOST_MODULES = ("comfy", "comfy_api", "comfy_execution", "folder_paths", "latent_preview")
KINDS = {"module", "callable", "class", "attribute", "instance_attribute", "dict_keys", "text_in"}

SYMBOLS: list[dict] = tomllib.loads(DATA.read_text(encoding="utf-8"))["symbol"]


class SymbolMismatch(AssertionError):
    pass


# ---------------------------------------------------------------- resolving names on the host

_CALL = re.compile(r"^(\w+)\((.*)\)$")


def resolve(name: str):
    """The object named ``name`` on the running host.

    ``a.b.C.m`` imports the longest importable module prefix and walks attributes from there;
    a part written ``F(ARG)`` stands for the result of calling ``F("ARG")`` (``io.Custom(T)``).
    Returns ``(owner, obj)``; owner is None for a module.
    """
    parts = name.split(".")
    module, i = None, len(parts)
    while i > 0:
        mod_name = ".".join(parts[:i])
        if "(" not in mod_name:
            try:
                module = importlib.import_module(mod_name)
                break
            except ModuleNotFoundError as e:
                if e.name is None or not mod_name.startswith(e.name):
                    raise  # a module that exists failed to import: the host itself is broken
        i -= 1
    if module is None:
        raise SymbolMismatch(f"{name}: no module of it can be imported")
    owner, obj = None, module
    for part in parts[i:]:
        call = _CALL.match(part)
        attr = call.group(1) if call else part
        if not hasattr(obj, attr):
            raise SymbolMismatch(f"{name}: {type(obj).__name__} {getattr(obj, '__name__', obj)!r} has no "
                                 f"attribute {attr!r}")
        owner, obj = obj, getattr(obj, attr)
        if call:
            owner, obj = obj, obj(call.group(2))
    return owner, obj


def _is_plain_method(owner, name: str) -> bool:
    """Whether ``owner.name`` is an instance method (its signature still has ``self``)."""
    if not inspect.isclass(owner):
        return False
    for klass in owner.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            return inspect.isfunction(raw)
    return False


def _function_source(name: str) -> ast.AST:
    _, obj = resolve(name)
    obj = inspect.unwrap(obj)
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


# ---------------------------------------------------------------- one check per kind

def check(entry: dict) -> None:
    """Raise SymbolMismatch when the running host does not offer ``entry`` as the pack uses it."""
    name, kind = entry["name"], entry["kind"]
    if kind not in KINDS:
        raise SymbolMismatch(f"{name}: unknown kind {kind!r} in {DATA.name}")
    if kind in ("dict_keys", "text_in", "instance_attribute"):
        return {"dict_keys": _check_dict_keys, "text_in": _check_text_in,
                "instance_attribute": _check_instance_attribute}[kind](entry)
    owner, obj = resolve(name)
    if entry.get("dataclass") and not dataclasses.is_dataclass(obj):
        raise SymbolMismatch(f"{name}: is no longer a dataclass (the pack reads its fields)")
    if kind == "module":
        if not inspect.ismodule(obj):
            raise SymbolMismatch(f"{name}: is a {type(obj).__name__}, not a module")
    elif kind == "class":
        if not inspect.isclass(obj):
            raise SymbolMismatch(f"{name}: is a {type(obj).__name__}, not a class")
        if "base" in entry:
            base = getattr(builtins, entry["base"], None) or resolve(entry["base"])[1]
            if not issubclass(obj, base):
                raise SymbolMismatch(f"{name}: is not a subclass of {entry['base']} (mro: "
                                     f"{[c.__name__ for c in obj.__mro__]})")
    elif kind == "attribute":
        if "type" in entry and type(obj).__name__ != entry["type"]:
            raise SymbolMismatch(f"{name}: is a {type(obj).__name__}, expected {entry['type']}")
        for key in entry.get("keys", []):
            if key not in obj:
                raise SymbolMismatch(f"{name}: has no key {key!r}")
    elif kind == "callable":
        _check_callable(entry, owner, obj)


def _check_callable(entry: dict, owner, obj) -> None:
    name = entry["name"]
    if not callable(obj):
        raise SymbolMismatch(f"{name}: is a {type(obj).__name__}, not callable")
    if entry.get("coroutine") and not inspect.iscoroutinefunction(obj):
        raise SymbolMismatch(f"{name}: is no longer a coroutine function (async def)")
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError) as e:
        raise SymbolMismatch(f"{name}: signature cannot be read ({e})") from None
    args, kwargs = list(entry.get("args", [])), list(entry.get("kwargs", []))
    params = list(sig.parameters.values())
    if _is_plain_method(owner, name.rsplit(".", 1)[-1]):
        params = params[1:]  # self
        sig = sig.replace(parameters=params)
    for i, arg in enumerate(args):
        if i >= len(params) or params[i].kind in (params[i].VAR_POSITIONAL, params[i].VAR_KEYWORD):
            break
        if params[i].kind is params[i].KEYWORD_ONLY:
            raise SymbolMismatch(f"{name}{sig}: {arg!r} is passed as positional argument {i + 1} "
                                 f"but the host makes {params[i].name!r} keyword-only")
        if params[i].name != arg:
            raise SymbolMismatch(f"{name}{sig}: positional argument {i + 1} is {params[i].name!r}, the pack "
                                 f"passes {arg!r} there")
    try:
        sig.bind(*args, **{k: k for k in kwargs})
    except TypeError as e:
        raise SymbolMismatch(f"{name}{sig}: the pack's call ({', '.join(args + [k + '=' for k in kwargs])}) "
                             f"does not bind: {e}") from None


def _check_instance_attribute(entry: dict) -> None:
    """``name`` = ``Class.attr``; ``assigned_in`` must assign ``<something>.attr`` (``self.attr = ...``)."""
    name, where = entry["name"], entry["assigned_in"]
    attr = name.rsplit(".", 1)[1]
    resolve(name.rsplit(".", 1)[0])  # the class itself must exist
    tree = _function_source(where)
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and t.attr == attr and isinstance(t.ctx, ast.Store):
                    return
    raise SymbolMismatch(f"{name}: {where} no longer assigns .{attr}")


def _dict_keys(tree: ast.AST, var: str | None, mode: str) -> set[str]:
    """String keys written into (``mode="written"``) or read from (``"read"``) a dict in ``tree``."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        if mode == "written" and isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(t, ast.Name) and (var is None or t.id == var) for t in node.targets):
                keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(
                node.value, ast.Name) and (var is None or node.value.id == var):
            if (mode == "written") == isinstance(node.ctx, ast.Store):
                keys.add(node.slice.value)
    return keys


def _check_dict_keys(entry: dict) -> None:
    """``written``: ``in`` still puts each of ``keys`` into dict ``var``; ``read``: it reads no key
    of ``var`` beyond ``keys`` (the keys the pack provides)."""
    name, mode, keys = entry["name"], entry["mode"], set(entry["keys"])
    tree = _function_source(entry["in"])
    found = _dict_keys(tree, entry.get("var"), mode)
    if mode == "written" and not keys <= found:
        raise SymbolMismatch(f"{name}: {entry['in']} no longer puts {sorted(keys - found)} into "
                             f"{entry.get('var', 'its dict')} (it writes {sorted(found)})")
    if mode == "read" and not found <= keys:
        raise SymbolMismatch(f"{name}: {entry['in']} now reads {sorted(found - keys)} from "
                             f"{entry.get('var', 'the dict')}, which the pack does not provide ({sorted(keys)})")


def _check_text_in(entry: dict) -> None:
    _, obj = resolve(entry["in"])
    source = inspect.getsource(inspect.unwrap(obj))
    if entry["text"] not in source:
        raise SymbolMismatch(f"{entry['name']}: {entry['in']} no longer contains {entry['text']!r}")


# ---------------------------------------------------------------- the pack's own use (AST scan)

def host_names_used(sources: dict[str, str]) -> set[str]:
    """Dotted host names the pack's modules use: imports, and attribute chains rooted in them.

    ``sources`` maps a module's name inside the pack (``nodes._api``, ``__init__``) to its text.
    ``from ._api import io`` follows ``nodes/_api.py``; a module-level ``X = io.Custom("T")``
    makes ``X.Input`` read as ``comfy_api.latest.io.Custom(T).Input``.
    """
    aliases: dict[str, dict[str, str]] = {}
    used: set[str] = set()

    def module_aliases(mod: str) -> dict[str, str]:
        if mod in aliases:
            return aliases[mod]
        table: dict[str, str] = {}
        aliases[mod] = table
        tree = ast.parse(sources[mod])
        package = mod.rsplit(".", 1)[0] if "." in mod else ""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in HOST_MODULES:
                        table[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
                        used.add(a.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.split(".")[0] in HOST_MODULES:
                    for a in node.names:
                        table[a.asname or a.name] = f"{node.module}.{a.name}"
                        used.add(f"{node.module}.{a.name}")
                elif node.level == 1 and node.module:
                    sibling = f"{package}.{node.module}" if package else node.module
                    if sibling in sources:
                        other = module_aliases(sibling)
                        for a in node.names:
                            if a.name in other:
                                table[a.asname or a.name] = other[a.name]
        for node in tree.body:  # X = io.Custom("T")
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Call) and len(node.value.args) == 1
                    and isinstance(node.value.args[0], ast.Constant)):
                chain = _chain(node.value.func, table)
                if chain:
                    table[node.targets[0].id] = f"{chain}({node.value.args[0].value})"
        return table

    def _chain(node: ast.AST, table: dict[str, str]) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in table:
            return ".".join([table[node.id], *reversed(parts)])
        return None

    for mod, text in sources.items():
        table = module_aliases(mod)
        tree = ast.parse(text)
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Attribute, ast.Name)) or isinstance(parents.get(node), ast.Attribute):
                continue  # only the outermost link of a chain
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                continue
            chain = _chain(node, table)
            if chain:
                used.add(chain)
    return used


def host_names_in_strings(texts: list[str]) -> set[str]:
    """String constants that are whole dotted host names (``"comfy.model_base.SD3"``)."""
    return {node.value for text in texts for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and DOTTED_HOST_NAME.fullmatch(node.value)}


def pack_host_names() -> set[str]:
    return host_names_used(pack_sources()) | host_names_in_strings(
        [p.read_text(encoding="utf-8") for p in STRING_SOURCES])


def pack_sources() -> dict[str, str]:
    return {("__init__" if p.name == "__init__.py" and p.parent == ROOT else
             "nodes" if p.name == "__init__.py" else f"nodes.{p.stem}"): p.read_text(encoding="utf-8")
            for p in PACK_SOURCES}


# ---------------------------------------------------------------- the tests

@pytest.fixture
def comfy_imported(request):
    """ComfyUI set up as the other tests set it up, before this file imports any of it.

    The in-process host must be built before ComfyUI's ``nodes`` is imported (``nodes`` rebinds
    ``utils``), so it is built first when it can be. A host that cannot load the pack fails the
    tests that use it; here each symbol is still checked on its own.
    """
    try:
        request.getfixturevalue("host")
    except Exception:  # noqa: BLE001  (reported by every test that uses `host`)
        pass


@pytest.mark.parametrize("entry", SYMBOLS, ids=[e["name"] for e in SYMBOLS])
def test_symbol(entry, comfy_imported):
    """The host offers this symbol as the pack uses it (see the entry in comfy_symbols.toml)."""
    check(entry)


def test_list_is_well_formed():
    names = [e["name"] for e in SYMBOLS]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    for e in SYMBOLS:
        assert e["kind"] in KINDS, e
        assert e.get("reached") in ("name", "object", "contract"), e
        assert e.get("v0_3_75") and e.get("v0_38"), f"{e['name']}: say what was checked against each version"


def test_every_host_name_the_pack_uses_is_listed():
    listed = {e["name"] for e in SYMBOLS}
    unlisted = sorted(pack_host_names() - listed)
    assert not unlisted, f"the pack uses host names missing from {DATA.name}: {unlisted}"


def test_every_listed_name_is_still_used():
    used = pack_host_names()
    stale = sorted(e["name"] for e in SYMBOLS if e["reached"] == "name" and e["name"] not in used)
    assert not stale, f"{DATA.name} lists names the pack no longer uses: {stale}"


# ---------------------------------------------------------------- the checker reports wrong entries

WRONG_ENTRIES = [
    ({"name": "comfy.samplers.NoSuchSampler", "kind": "class"}, "has no attribute 'NoSuchSampler'"),
    ({"name": "comfy.no_such_module", "kind": "module"}, "comfy.no_such_module"),
    ({"name": "comfy.utils.common_upscale", "kind": "callable",
      "args": ["samples", "height", "width", "upscale_method", "crop"]}, "positional argument 2 is 'width'"),
    ({"name": "comfy.utils.common_upscale", "kind": "callable",
      "args": ["samples", "width", "height"]}, "does not bind"),
    ({"name": "comfy.utils.load_torch_file", "kind": "callable", "args": ["ckpt"],
      "kwargs": ["safe_load", "no_such_option"]}, "does not bind"),
    ({"name": "comfy.samplers.CFGGuider.set_cfg", "kind": "callable", "args": ["cfg", "extra"]}, "does not bind"),
    ({"name": "comfy.utils.PROGRESS_BAR_ENABLED", "kind": "attribute", "type": "int"}, "expected int"),
    ({"name": "comfy.model_management.InterruptProcessingException", "kind": "class",
      "base": "KeyError"}, "not a subclass of KeyError"),
    ({"name": "comfy.samplers.CFGGuider.no_such_attr", "kind": "instance_attribute",
      "assigned_in": "comfy.samplers.CFGGuider.outer_sample"}, "no longer assigns .no_such_attr"),
    ({"name": "extra_args", "kind": "dict_keys", "in": "comfy.samplers.CFGGuider.inner_sample",
      "var": "extra_args", "mode": "written", "keys": ["seed", "no_such_key"]}, "no_such_key"),
    ({"name": "k_callback", "kind": "dict_keys", "in": "comfy.samplers.KSAMPLER.sample",
      "var": "x", "mode": "read", "keys": ["i"]}, "now reads"),
    ({"name": "log", "kind": "text_in", "in": "comfy.lora.load_lora", "text": "no such message"}, "no longer contains"),
    ({"name": "folder_paths.folder_names_and_paths", "kind": "attribute", "keys": ["no_such_folder"]},
     "no key 'no_such_folder'"),
]


@pytest.mark.parametrize("entry,message", WRONG_ENTRIES, ids=[f"{e['kind']}:{m[:24]}" for e, m in WRONG_ENTRIES])
def test_checker_reports_a_wrong_entry(entry, message, comfy_imported):
    with pytest.raises(SymbolMismatch, match=re.escape(message)):
        check(entry)


def test_scan_reports_an_unlisted_host_name():
    sources = pack_sources()
    sources["nodes.extra"] = ("import comfy.samplers\nfrom ._api import io\nfrom comfy_api.latest import Input\n"
                              "X = io.Custom('T')\n"
                              "def f(m):\n"
                              "    return comfy.samplers.NewHelper(m), io.NewType.Input('a'), X.Output(), Input\n")
    listed = {e["name"] for e in SYMBOLS}
    assert host_names_used(sources) - listed == {
        "comfy.samplers.NewHelper", "comfy_api.latest.io.NewType.Input", "comfy_api.latest.io.Custom(T).Output",
        "comfy_api.latest.Input",
    } - listed


def test_scan_reports_a_host_class_named_in_a_string():
    source = 'FAMILIES = (("X", ("comfy.model_base.NewModel",)),)\n"""comfy.model_base.SD3 in prose"""\n'
    found = host_names_in_strings([source])
    assert found == {"comfy.model_base.NewModel"}


def test_checker_reports_a_class_that_is_no_longer_a_dataclass(comfy_imported):
    with pytest.raises(SymbolMismatch, match="no longer a dataclass"):
        check({"name": "comfy.samplers.CFGGuider", "kind": "class", "dataclass": True})


def test_resolve_reaches_a_type_made_by_a_call(comfy_imported):
    _, obj = resolve("comfy_api.latest.io.Custom(SWD_TEST_TYPE).Input")
    assert inspect.isclass(obj)


if __name__ == "__main__":  # a quick look without pytest: python tests/host/test_comfy_symbols.py
    sys.exit(pytest.main([__file__, "-q"]))
