"""The package's shape holds: sub-packages import one way (no cycles), modules stay small, the public API and the
CLI are what they were, and the command line starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import frostline as fl
from frostline.cli import app
from frostline.core.lazy import exported_names

SRC = Path(fl.__file__).parent
#: the sub-packages in import order: each imports only those before it (docs/architecture.md)
LAYERS = ["core", "data", "models", "freezing", "evaluation", "training", "reporting", "runs", "integrations", "cli"]
#: the top-level API of 0.1
API = [
    "Blocks", "Dataset", "Finding", "FreezePlan", "FrostlineError", "FrozenChangedError", "FrozenCheck", "HeadInfo",
    "LeakageReport", "LoadedModel", "PooledTextClassifier", "Pooling", "PredictionSet", "ProbeFit", "RunConfig",
    "RunModel", "Selection", "SelectorError", "Snapshot", "Splits", "Strategy", "Thresholds", "TrainConfig",
    "check_model", "check_splits", "classification_metrics", "compare", "dedup", "diagnose_run", "discover_blocks",
    "evaluate", "export_run", "find_head", "fit", "fit_probe", "freeze", "from_tensors", "is_pinned", "load_model",
    "load_run", "make_optimizer", "minilm_dir", "module_rows", "param_groups", "parse_strategies", "parse_strategy",
    "predict", "predict_file", "prepare", "raise_on_errors", "read_image_folder", "read_table", "replace_head",
    "resolve", "resolve_params", "set_trainable", "snapshot", "split", "summary", "train", "trainable_state",
    "unfreeze", "verify_frozen",
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """frostline modules ``path`` imports (relative imports resolved); optionally only those run at import."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = _run_at_import(tree.body) if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # ``from .pkg import module`` imports the module too
                child = f"{target}.{alias.name}"
                found.add(child if _exists(child) else target)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found.update(n for n in names if n and n.startswith("frostline."))
    return found


def _run_at_import(body: list[ast.stmt]) -> list[ast.AST]:
    """Statements executed when the module is imported: not function bodies, not ``if TYPE_CHECKING:`` blocks."""
    nodes: list[ast.AST] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
            nodes.extend(_run_at_import([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]))
        else:
            nodes.extend(ast.walk(node))
    return nodes


def _exists(module: str) -> bool:
    path = SRC.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_is_in_a_stage_package_and_under_400_lines():
    top = sorted(p.name for p in SRC.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
    long = {str(p.relative_to(SRC)): n for p in _sources() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_sub_packages_import_only_the_ones_before_them():
    wrong = []
    for path in _sources():
        source = _module_name(path).split(".")
        if len(source) < 2 or source[1] not in LAYERS:
            continue
        for target in _imports(path, top_level_only=False):
            layer = target.split(".")[1]
            if layer in LAYERS and LAYERS.index(layer) > LAYERS.index(source[1]):
                wrong.append(f"{_module_name(path)} -> {target}")
    assert wrong == []


def test_no_import_cycles_between_modules():
    """Not even through an import inside a function or under ``TYPE_CHECKING``: a circle is a design smell."""
    graph = {_module_name(p): _imports(p, top_level_only=False) for p in _sources()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node] & graph.keys():
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []


def test_packages_have_a_docstring_a_sorted_all_and_no_name_that_hides_a_module():
    for init in sorted(SRC.glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), init
        package = __import__(_module_name(init), fromlist=["__all__"])
        exported = list(package.__all__)
        assert exported == sorted(exported), init
        modules = {p.stem for p in init.parent.glob("*.py")}
        assert not set(exported) & modules, f"{init}: {set(exported) & modules} hide their module"
        for name in exported:
            assert getattr(package, name) is not None


#: names added after 0.1 (8/11: importance)
NEW = ["Importance", "importance_scores", "load_animal_mnist", "score_importance", "write_bundled"]


def test_top_level_api_keeps_every_0_1_name():
    assert sorted(fl.__all__) == list(fl.__all__) == sorted(API + NEW)
    assert fl.fit is fl.training.engine.fit and fl.freeze is fl.freezing.plan.freeze
    assert callable(fl.train) and callable(fl.summary) and callable(fl.freeze)


def test_cli_keeps_its_commands():
    names = sorted(c.name or c.callback.__name__ for c in app.registered_commands)
    assert names == ["check", "compare", "demo", "evaluate", "export", "importance", "inspect", "predict", "train"]


def test_each_package_lists_its_names_once_and_loads_them_on_first_use():
    """``__all__`` and the ``if TYPE_CHECKING:`` imports that :mod:`frostline.core.lazy` reads agree, name by name."""
    for init in [SRC / "__init__.py", *sorted(SRC.glob("*/__init__.py"))]:
        package = __import__(_module_name(init), fromlist=["__all__"])
        lazy = exported_names(package.__name__, str(init))
        if lazy:
            assert sorted(lazy) == list(package.__all__), init
            assert set(dir(package)) >= set(lazy)
    with pytest.raises(AttributeError, match=r"module 'frostline\.data' has no attribute 'nope'"):
        fl.data.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'frostline' has no attribute 'engine'"):
        fl.engine  # noqa: B018  (0.1's flat module paths are gone)
    assert fl.training.engine.fit is fl.fit  # a sub-module's name loads the sub-module


STARTUP = """
import sys
sys.argv = ["frostline", "--help"]
from frostline.cli import app
try:
    app()
except SystemExit:
    heavy = ("torch", "sklearn", "matplotlib", "lightning_fabric", "transformers", "numpy", "scipy", "pyarrow")
    sys.stderr.write("loaded: " + ",".join(m for m in heavy if m in sys.modules) + "\\n")
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["predict", "--help"], ["inspect", "--help"]])
def test_the_command_line_answers_help_without_torch(argv):
    code = STARTUP.replace('"--help"]', ", ".join(map(repr, argv)) + "]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: frostline" in done.stdout
    assert done.stderr.strip().endswith("loaded:"), done.stderr


def test_version_and_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "frostline", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"frostline {fl.__version__}", done.stderr


def test_the_new_surfaces_reach_what_the_run_path_needs():
    by_layer: dict[str, list[str]] = defaultdict(list)
    for layer in LAYERS[:-1]:
        by_layer[layer] = __import__(f"frostline.{layer}", fromlist=["__all__"]).__all__
    assert {"read_table", "split", "Encoded"} <= set(by_layer["data"])
    assert {"load_model", "replace_head", "discover_blocks"} <= set(by_layer["models"])
    assert {"freeze", "verify_frozen", "check_model"} <= set(by_layer["freezing"])
    assert {"fit", "predict", "TrainConfig", "parse_strategy"} <= set(by_layer["training"])
    assert {"classification_metrics", "diagnose_run", "Predictions"} <= set(by_layer["evaluation"])
    assert {"write_run_report", "history_table"} <= set(by_layer["reporting"])
    assert {"RunConfig", "evaluate", "load_run", "export_run"} <= set(by_layer["runs"])


def test_readme_is_short_and_every_section_links_to_its_docs():
    """At most 220 lines; each section (but the list of documents) a paragraph, an example and a link that exists."""
    import re

    root = SRC.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 220
    sections = re.split(r"\n## ", readme)[1:]
    for section in sections:
        title = section.splitlines()[0]
        if title == "Documentation":
            continue
        assert "```" in section, title
        assert re.search(r"\]\(docs/[\w-]+\.md", section), title
    for target in re.findall(r"\]\((docs/[\w./-]+?\.md)", readme):
        assert (root / target).is_file(), target
