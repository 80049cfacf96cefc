"""The import structure: no cycle in any package, packages and mpsim's layers import only downward.

Every ``import`` statement counts, inside functions too (a lazy import of one
of our modules is still a dependency); only ``if TYPE_CHECKING:`` blocks are
left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mpsim", "continual", "hls_gen", "sim")

#: Which of our packages each package may import (besides itself).
ALLOWED_PACKAGES = {"mpsim": set(), "continual": {"mpsim"}, "hls_gen": {"mpsim"}, "sim": {"mpsim", "hls_gen"}}

#: mpsim's layers, bottom first: a module imports only from its own layer or below.
MPSIM_LAYERS: tuple[tuple[str, ...], ...] = (
    ("mpsim.config_file", "mpsim.jit_cache"),  # reading settings files; Numba's cache guard
    # specs
    (
        "mpsim.formats",
        "mpsim.mx",
        "mpsim.rounding",
        "mpsim.randbits",
        "mpsim.gemm_config",
        "mpsim.precision",
        "mpsim.backend_registry",
    ),
    ("mpsim.params",),  # the records the kernels read
    ("mpsim.kernels", "mpsim.gemm_kernels", "mpsim.mx_kernels", "mpsim.mx_gemm_kernels"),  # Numba on NumPy
    # the NumPy API
    ("mpsim.quantization", "mpsim.codec", "mpsim.gemm", "mpsim.mx_quantization", "mpsim.mx_gemm", "mpsim.mx_edges"),
    ("mpsim.torch_glue", "mpsim.autograd", "mpsim.nn", "mpsim.optim"),  # the torch adapter
    # the front and the applications
    ("mpsim", "mpsim.api", "mpsim.cli_kit", "mpsim.progress", "mpsim.extras", "mpsim.energy", "mpsim.data"),
    ("mpsim.train", "mpsim.doctor", "mpsim.cli"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Which of ``modules`` the source of module ``name`` imports anywhere, ``if TYPE_CHECKING:`` blocks excepted."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)  # a submodule, or a name from the module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source, name))
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = our_modules()
    return {
        name: imported_modules(path.read_text(), name, path.name == "__init__.py", set(modules))
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _layer_of(module: str) -> int:
    for level, names in enumerate(MPSIM_LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names if name != "mpsim"):
            return level
        if module == "mpsim" and "mpsim" in names:
            return level
    raise AssertionError(f"{module} is in no layer of MPSIM_LAYERS: place it there")


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set(), "f": {"f"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_function_level_imports_count_and_type_checking_ones_do_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.b\n"
        "def f():\n    from p.c import x\n    from . import d\n"
    )
    assert imported_modules(source, "p.a", False, {"p.a", "p.b", "p.c", "p.d"}) == {"p.c", "p.d"}


def test_no_import_cycle_in_any_package() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_downward(package: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED_PACKAGES[package] | {package}
    )
    assert wrong == []


def test_mpsim_layers_import_only_downward() -> None:
    graph = import_graph()
    wrong = sorted(
        f"{module} (layer {_layer_of(module)}) imports {target} (layer {_layer_of(target)})"
        for module, targets in graph.items()
        if module.split(".")[0] == "mpsim"
        for target in targets
        if _layer_of(target) > _layer_of(module)
    )
    assert wrong == []
