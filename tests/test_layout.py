"""The package's floors hold: nothing imports a floor above its own, no import circle, no oversized module.

Every import counts, at module level, inside functions and under TYPE_CHECKING alike: a circle hidden behind a
lazy import is still a circle to the person reading the code. The floors, from the protocol up to the product:
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("controller", "controller.log", "controller.clock", "controller.templating", "controller.text",
                    "controller.phrases", "controller.process", "controller.delivery", "controller.address_policy",
                    "controller.latency")),
    ("audio", ("controller.audio",)),
    ("esl", ("controller.esl",)),
    ("state", ("controller.state",)),
    ("transfer", ("controller.transfer",)),
    ("config", ("controller.config",)),
    ("workflow", ("controller.workflow",)),
    ("brain", ("controller.brain",)),
    ("actions", ("controller.actions",)),
    ("call", ("controller.call",)),
    ("aftercall", ("controller.aftercall",)),
    ("ops", ("controller.ops",)),
    ("runtime", ("controller.runtime",)),
    ("cli", ("controller.cli",)),
]
PACKAGES = ("controller", "fssim", "knowledge")
# the simulator is a test peer and the knowledge package a library: neither reaches into the product
ALLOWED_OUTSIDE = {"fssim": ("controller.clock", "controller.log", "fssim"), "knowledge": ("knowledge",)}
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, resolved to our modules (`from x import y` counts y when it is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES and m in MODULES and m != name}


def floor_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if module == prefix or (prefix != "controller" and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


FILES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
MODULES = {module_name(p) for p in FILES}
GRAPH = {module_name(p): imports(p) for p in FILES}


def test_every_controller_module_has_a_floor():
    assert [m for m in MODULES if m.startswith("controller") and floor_of(m) is None] == []


def test_nothing_imports_a_floor_above_its_own():
    upward = []
    for module, targets in GRAPH.items():
        if not module.startswith("controller"):
            continue
        for target in targets:
            if target.startswith("fssim") and floor_of(module) != len(FLOORS) - 1:
                upward.append(f"{module} -> {target} (the simulator is for the cli and tests only)")
            elif target.startswith("controller") and floor_of(target) > floor_of(module):
                upward.append(f"{module} ({FLOORS[floor_of(module)][0]}) -> {target} ({FLOORS[floor_of(target)][0]})")
    assert upward == []


@pytest.mark.parametrize("package", sorted(ALLOWED_OUTSIDE))
def test_the_simulator_and_the_knowledge_library_stay_apart(package):
    allowed = ALLOWED_OUTSIDE[package]
    reached = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if m.split(".")[0] == package
                     for t in targets if not any(t == a or t.startswith(a + ".") for a in allowed))
    assert reached == []


def test_no_import_circle():
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    # a package's __init__ importing its own modules is how registration works, not a circle of modules
    circles = [c for c in circles if not all(part.startswith(c.split(" -> ")[0]) for part in c.split(" -> "))]
    assert circles == []


def test_no_module_is_oversized():
    assert [f"{p.relative_to(ROOT)}: {n} lines" for p in FILES
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES] == []
