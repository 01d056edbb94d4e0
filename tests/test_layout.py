"""The package's layering, read from its source: each part imports only the parts its row of
``ALLOWED`` names (the table of docs/development.md, in its order), no import cycle between
modules, and inference (what a deployed model runs) imports nothing from training."""
import ast
from pathlib import Path

import ds2stream

PACKAGE = Path(ds2stream.__file__).parent

#: Helpers any part may import: errors, config parsing, durable files, failpoints, MindSpore's
#: mode and logs, and the package root (its version, its compiled kernels).
HELPERS = {"ds2stream", "errors", "_config", "files", "failpoints", "runtime"}
#: Each part of the package (a module, or a package: its modules) and the parts it may import,
#: in the order data flows: a part names only parts above it.
ALLOWED = {
    "data": set(),  # files -> utterances: audio, text, sources, inputs, remote, ...
    "features": set(),
    "data.shards": {"data", "features"},  # stores the features, and their config, with the audio
    "pipeline": {"data", "features", "data.shards"},
    "model": {"data", "features"},  # the config: no MindSpore
    "network": {"data", "features", "model"},  # the cells, imported lazily
    "checkpoint": {"data", "features", "model", "network"},
    "error_rates": set(),
    "inference": {"data", "features", "data.shards", "pipeline", "model", "network", "checkpoint", "error_rates"},
    # The dev evaluation at an epoch's end is `ds2stream eval`'s loop and greedy decoder: one loop.
    "training": {"data", "features", "data.shards", "pipeline", "model", "network", "checkpoint", "error_rates",
                 "inference"},
    "presets": {"features", "pipeline", "model", "training"},
    "demo": {"data", "features", "data.shards", "pipeline", "model", "network", "checkpoint", "inference",
             "training", "presets"},
    "corpus": {"data"},
    "cli": {"data", "features", "data.shards", "pipeline", "model", "network", "checkpoint", "error_rates",
            "inference", "training", "presets", "demo", "corpus"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """ds2stream modules that ``path`` imports, at any depth of its code (lazy imports count)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(name for name in [target, *names] if name.startswith("ds2stream"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ds2stream"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def part_of(module: str) -> str | None:
    """The row of ALLOWED (or of HELPERS) that ``module`` belongs to: the longest that names it."""
    name = module.removeprefix("ds2stream.") if module != "ds2stream" else module
    rows = [row for row in [*ALLOWED, *HELPERS] if name == row or name.startswith(row + ".")]
    return max(rows, key=len, default=None)


def test_the_table_of_allowed_imports_runs_one_way():
    parts = list(ALLOWED)
    for position, part in enumerate(parts):
        assert ALLOWED[part] <= set(parts[:position]), f"{part} may import a part below it"


def test_each_part_imports_only_what_its_row_allows():
    edges = graph()
    unplaced = sorted(module for module in edges if part_of(module) is None)
    assert not unplaced, f"modules in no row of ALLOWED (add them, and to docs/development.md): {unplaced}"
    for module, targets in edges.items():
        part = part_of(module)
        if part in HELPERS:
            assert all(part_of(t) in HELPERS for t in targets), module
            continue
        wrong = sorted(t for t in targets if part_of(t) not in ALLOWED[part] | HELPERS | {part})
        assert not wrong, f"{module} ({part}) imports {wrong}"


def test_no_module_imports_one_that_imports_it_back():
    edges = graph()
    # Package __init__ files only re-export their own modules: leave them out of the cycle search.
    edges = {m: {t for t in ts if not PACKAGE.joinpath(*t.split(".")[1:], "__init__.py").exists()}
             for m, ts in edges.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for target in edges.get(node, ()):
            assert state.get(target) != 1, f"import cycle: {' -> '.join(trail + [target])}"
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_inference_imports_nothing_from_training():
    edges = graph()
    for module, targets in edges.items():
        deployed = ("ds2stream.checkpoint", "ds2stream.model", "ds2stream.network")
        if module.startswith("ds2stream.inference") or module in deployed:
            assert not [t for t in targets if t.startswith("ds2stream.training")], module
