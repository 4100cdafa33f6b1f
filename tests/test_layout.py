"""The package's layout as docs/layout.md states it: every submodule imports as a module, names that moved keep
a deprecation path, and every import follows the table of layers, without cycles."""

import ast
import importlib
import inspect
import pathlib
import pickle
import re
import subprocess
import sys
import types
import warnings

import pytest
import torch

import tts_fast as tts

PACKAGE = pathlib.Path(tts.__file__).parent
DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "layout.md"  # the repository, not the installed package


def _submodules() -> list:
    """Every Python submodule of the package (the compiled op libraries are loaded by torch, not imported)."""
    return sorted(m for m in _modules() if m != "tts_fast")


def test_every_submodule_imports_as_a_module():
    """``importlib.import_module(name)`` and ``import a.b.c as m`` (attribute by attribute) give the module
    itself: no package attribute hides a submodule of the same name."""
    names = _submodules()
    assert {"tts_fast.search.dfs", "tts_fast.rl.policy", "tts_fast.rl.critic", "tts_fast.rl.evaluate", "tts_fast.maze.planner",
            "tts_fast.cli.run", "tts_fast.runs.config", "tts_fast.distributed.local"} <= set(names)
    for name in names:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        assert isinstance(module, types.ModuleType), name
        attr = tts
        for part in name.split(".")[1:]:
            attr = getattr(attr, part)
        assert attr is module, f"tts_fast.{name.split('.', 1)[1]} is {type(attr).__name__}, not the module"


def test_import_statements_give_the_modules():
    code = ("import types, tts_fast.search.dfs as a, tts_fast.rl.critic as b, tts_fast.rl.policy as c, tts_fast.rl.evaluate as d, "
            "tts_fast.maze.planner as e, tts_fast.cli.run as f; "
            "assert all(isinstance(m, types.ModuleType) for m in (a, b, c, d, e, f)); "
            "assert a.DFS and b.TwinQ and c.DiffusionPolicy and d.Evaluation and e.MazePlanner and f.add_parser; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_tts_search_is_the_package_and_the_function():
    from tts_fast.search.api import search

    assert isinstance(tts.search, types.ModuleType) and tts.search is importlib.import_module("tts_fast.search")
    assert callable(tts.search) and tts.search.search is search
    assert inspect.signature(tts.search) == inspect.signature(search) and tts.search.__call__.__doc__ == search.__doc__
    assert pickle.loads(pickle.dumps(tts.search)) is tts.search
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    kw = dict(n_particles=3, num_steps=6, seed=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stable API does not warn
        a = tts.search(model, verifier, "bfs_best", **kw)
    b = search(model, verifier, "bfs_best", **kw)
    assert torch.equal(a.samples, b.samples) and a.nfe.model == b.nfe.model
    with pytest.raises(TypeError, match="model must be a tts_fast.Denoiser"):
        tts.search(None, verifier, "bon", n_particles=1, num_steps=1)


@pytest.mark.parametrize("old, new, args, kwargs", [
    ("tts_fast.rl.policy", "load_policy", ("halfcheetah", "medium", torch.zeros(2, 17)), {"device": "cpu"}),
    ("tts_fast.rl.critic", "load_critic", ("halfcheetah", "medium"), {}),
    ("tts_fast.maze.planner", "load_planner", ("medium",), {"device": "cpu"}),
])
def test_renamed_loaders_keep_their_old_call_with_a_warning(old, new, args, kwargs):
    module = importlib.import_module(old)
    package = importlib.import_module(old.rsplit(".", 1)[0])
    with pytest.warns(DeprecationWarning, match=f"now named {old.rsplit('.', 1)[0]}.{new}"):
        got = module(*args, **kwargs)
    expected = getattr(package, new)(*args, **kwargs)
    assert type(got) is type(expected)
    a, b = (got.net if hasattr(got, "net") else got), (expected.net if hasattr(expected, "net") else expected)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert inspect.signature(module) == inspect.signature(getattr(package, new))


def test_the_old_evaluate_call_warns_and_evaluates():
    rl = importlib.import_module("tts_fast.rl")
    with pytest.warns(DeprecationWarning, match="now named tts_fast.rl.evaluate_actor"):
        with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
            rl.evaluate("halfcheetah", lambda s, k: None, episodes=0)


def test_the_command_entry_points():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("tts-fast") == "tts_fast.cli:main"
    cli = importlib.import_module("tts_fast.cli")
    assert callable(cli.main) and isinstance(cli.dispatch, types.ModuleType)
    r = subprocess.run([sys.executable, "-m", "tts_fast", "run", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--prompts-file" in r.stdout


# -- the layers ------------------------------------------------------------------------------------


def _layers() -> tuple[dict, dict]:
    """(room -> layer, layer -> allowed layers) from docs/layout.md's table."""
    text = DOC.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    room_layer, allowed = {}, {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= set("-"):
            continue
        layer, holds, may = cells
        allowed[layer] = {x.strip() for x in may.split(",")}
        for name in re.findall(r"`([^`]+)`", holds):
            room_layer[name] = layer
    return room_layer, allowed


def _room(module: str) -> str:
    """The row name of a module in the table: 'search/' for tts_fast.search.*, 'ops.py', '__init__.py' for the face."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    if (PACKAGE / parts[1]).is_dir():
        return parts[1] + "/"
    return parts[1] + ".py"


def _modules() -> dict:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def _imports(mods: dict) -> dict:
    """module -> the tts_fast modules it imports (every import statement, at any depth)."""
    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for m, path in mods.items():
        is_pkg = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = m if is_pkg else m.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                full = (base + "." + (node.module or "")).strip(".") if node.level else (node.module or "")
                names = [full + "." + a.name if full + "." + a.name in mods else full for a in node.names]
            for n in names:
                r = resolve(n) if n.split(".")[0] == "tts_fast" else None
                if r and r != m:
                    targets.add(r)
        edges[m] = targets
    return edges


def test_every_module_has_a_layer():
    room_layer, allowed = _layers()
    assert set(allowed) == {"foundation", "ops", "schedules", "models", "verifiers", "search", "domains", "face", "runs", "launchers", "cli"}
    rooms = {_room(m) for m in _modules()} | {"_build_info.py"}
    assert rooms == set(room_layer), f"docs/layout.md lists {sorted(set(room_layer) - rooms)} that do not exist and misses {sorted(rooms - set(room_layer))}"


def test_imports_follow_the_layers():
    room_layer, allowed = _layers()
    bad = []
    for m, targets in _imports(_modules()).items():
        for t in targets:
            a, b = _room(m), _room(t)
            if a != b and room_layer[b] not in allowed[room_layer[a]]:
                bad.append(f"{m} ({room_layer[a]}) imports {t} ({room_layer[b]})")
    assert not bad, "imports against docs/layout.md:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    edges = _imports(_modules())
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles
