"""The package's layering, read from its source: no import cycle between modules, and inference
(what a deployed model runs) imports nothing from training."""
import ast
from pathlib import Path

import ds2stream

PACKAGE = Path(ds2stream.__file__).parent


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
        if module.startswith("ds2stream.inference") or module in ("ds2stream.checkpoint", "ds2stream.model"):
            assert not [t for t in targets if t.startswith("ds2stream.training")], module
