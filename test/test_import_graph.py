"""The package's import graph reads top-down by pipeline stage (DESIGN §1): a DAG, no package import
hidden inside a function to dodge a cycle, and no stage reaching up into a later one."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ros2_netvlad"
LEAVES = {
    "config",
    "config_files",
    "config_rules",
    "resize",
    "geometry",
    "imaging",
    "errors",
    "tables",
    "camera",
    "__init__",
}
# stage → the stages it may import (leaves always allowed)
ALLOWED = {
    "leaf": set(),
    "sources": set(),
    "model": set(),
    "verification": set(),
    "maps": {"sources", "model", "verification"},
    "localization": {"sources", "model", "maps", "verification"},
    "evaluation": {"sources", "model", "maps", "localization", "verification"},
    "training": {"sources", "model", "evaluation"},
    "demo": {"sources", "model", "maps", "localization", "evaluation", "training", "verification"},
    "ros": {"sources", "model", "maps", "localization", "evaluation", "verification"},
    "tools": {
        "sources",
        "model",
        "maps",
        "localization",
        "evaluation",
        "training",
        "demo",
        "ros",
        "verification",
    },
    "entry": set(),
}


def stage(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or (len(parts) == 1 and parts[0] in LEAVES):
        return "leaf"
    return parts[0]


def imports() -> dict[str, list[tuple[str, bool]]]:
    """module → [(imported ros2_netvlad module, imported inside a function?)]"""
    found = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ros2_netvlad"):
                found[module].append((node.module, node.col_offset > 0))
    return found


def test_no_package_import_is_hidden_in_a_function():
    hidden = [(m, t) for m, targets in imports().items() for t, local in targets if local]
    assert not hidden, hidden


def test_stages_only_import_earlier_stages():
    wrong = []
    for module, targets in imports().items():
        for target, _ in targets:
            here, there = stage(module), stage(target)
            if there not in ("leaf", here) and there not in ALLOWED[here]:
                wrong.append(f"{module} → {target}")
    assert not wrong, wrong


def test_the_module_graph_has_no_cycle():
    graph = {m: {t for t, _ in targets} for m, targets in imports().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import cycle: {' → '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


# --- the house's shape (issue 18's targets), printed with -s and asserted ------------------------
def _classes_and_functions():
    classes, lengths = [], []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                public = [
                    n.name
                    for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and not n.name.startswith("_")
                ]
                classes.append((len(public), f"{path.relative_to(PACKAGE)}:{node.name}"))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append(node.end_lineno - node.lineno + 1)
    return sorted(classes, reverse=True), sorted(lengths)


def test_the_node_is_thin_and_the_map_model_file_is_named_once():
    node = (PACKAGE / "ros" / "node.py").read_text()
    literal = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and n.value == "model.pt"
    ]
    print(f"\nnode.py: {len(node.splitlines())} lines; 'model.pt' literals: {literal}")
    assert len(node.splitlines()) <= 250
    assert node.count("mode ==") == 1  # once, at start: the pipeline's strategy is chosen there
    assert literal == ["maps/storage.py"]


def test_no_class_has_more_than_15_public_methods_and_functions_stay_small():
    classes, lengths = _classes_and_functions()
    median = lengths[len(lengths) // 2]
    print(
        f"\nwidest classes: {classes[:3]}; function median {median} lines, p90 "
        f"{lengths[int(len(lengths) * 0.9)]}"
    )
    assert classes[0][0] <= 15, classes[:3]
    assert median <= 9


def test_the_readme_is_a_front_door_that_links_every_docs_page():
    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    pages = sorted(p.name for p in (root / "docs").glob("*.md"))
    print(f"\nREADME: {len(readme.splitlines())} lines; docs pages: {pages}")
    assert len(readme.splitlines()) <= 250
    assert pages and all(f"docs/{page}" in readme for page in pages)
