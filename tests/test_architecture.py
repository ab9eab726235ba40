"""The package's import graph runs one way (docs/architecture.md): no cycles, training never reaches evaluation or
experiments, data never reaches model code, leaves stay leaves; files and functions stay short.

Imports inside functions count: they are arrows too.
"""

import ast
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "bsr_lightning"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 320, 60


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(importer: str, node: ast.AST) -> set[str]:
    """The package modules an import statement reaches (the longest known prefix of each imported name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = importer.split(".")
            is_package = MODULES[importer].name == "__init__.py"
            parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
            base = ".".join(parts + ([node.module] if node.module else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    hits = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != importer:
            hits.add(name)
    return hits


def build_graph() -> dict[str, set[str]]:
    """Arrows between modules; the top-level ``bsr_lightning`` (the public face, re-exporting) is left out."""
    graph = {}
    for name, path in MODULES.items():
        if name == "bsr_lightning":
            continue
        arrows = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                arrows |= resolve(name, node)
        graph[name] = arrows - {"bsr_lightning"}
    return graph


GRAPH = build_graph()


def reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def in_area(module: str, *areas: str) -> bool:
    return any(module == f"bsr_lightning.{a}" or module.startswith(f"bsr_lightning.{a}.") for a in areas)


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_level_imports():
    assert "bsr_lightning.backbones.tiny" in GRAPH["bsr_lightning.backbones.names"]  # imported inside a function


def test_no_import_cycles():
    assert cycles() == []


TRAINING = ("reward", "rloo", "sft", "base", "training", "backbones", "data", "args", "class_paths", "synthetic_task")


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if in_area(m, *TRAINING)))
def test_training_code_never_reaches_evaluation_experiments_or_the_cli(module):
    late = sorted(m for m in reach(module) if in_area(m, "evaluation", "experiments", "cli", "plan", "__main__"))
    assert late == [], f"{module} reaches {late}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if in_area(m, "data")))
def test_data_receives_a_tokenizer_and_never_reaches_model_code(module):
    allowed_backbones = {"bsr_lightning.backbones.tokenizers", "bsr_lightning.backbones.names",
                         "bsr_lightning.backbones.tiny"}  # tokenizers by name; `tiny:` builds its files on first use
    bad = sorted(m for m in reach(module) if in_area(m, "reward", "rloo", "sft", "base", "training")
                 or (in_area(m, "backbones") and m not in allowed_backbones | {"bsr_lightning.backbones"}))
    assert bad == [], f"{module} reaches {bad}"
    direct = sorted(m for m in GRAPH[module] if in_area(m, "backbones"))
    assert set(direct) <= {"bsr_lightning.backbones.tokenizers"}, direct


LEAVES = ["bsr_lightning.errors", "bsr_lightning.synthetic_task", "bsr_lightning.lightning_compat"]


@pytest.mark.parametrize("module", LEAVES)
def test_leaves_import_nothing_from_the_package(module):
    assert GRAPH[module] == set()


@pytest.mark.parametrize("module", ["bsr_lightning.files", "bsr_lightning.class_paths", "bsr_lightning.chat_templates"])
def test_near_leaves_import_only_the_errors(module):
    assert GRAPH[module] <= {"bsr_lightning.errors"}


def test_args_import_only_the_errors_and_the_template_texts():
    assert GRAPH["bsr_lightning.args"] <= {"bsr_lightning.errors", "bsr_lightning.chat_templates"}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if in_area(m, "backbones")))
def test_backbones_know_nothing_of_reward_rloo_or_data(module):
    bad = sorted(m for m in reach(module) if in_area(m, "reward", "rloo", "sft", "base", "training", "data"))
    assert bad == [], f"{module} reaches {bad}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_files_and_functions_are_short(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_FILE_LINES
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
