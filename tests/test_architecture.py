"""The arrows of DESIGN.md, checked by reading every module's imports with `ast`.

    shells    cli, daemon, web, pipeline
       ↓
    stages    ingest, embed, planner, outbox, subscribers (they open sessions)
       ↓
    parts     sources, semantic, filters, scoring, email, mail, links, schedule
       ↓
    base      store, config, values, errors (+ small utilities)

One entry per package: a module takes its package's layer. A module may
import its own layer or the layers below it, never one above; nothing outside
`digest.cli` imports the CLI; and the pure stages (filters, scoring, email and
the plain values) touch no session, clock or network. A new package must be
given a layer here, so the question "where does it sit?" is asked when it is
added, not after the arrows have bent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "digest"

SHELLS, STAGES, PARTS, BASE = 3, 2, 1, 0
LAYERS: dict[str, int] = {
    # shells: thin layers over the stages, each the owner of one way in
    "digest.__main__": SHELLS,
    "digest.cli": SHELLS,
    "digest.daemon": SHELLS,
    "digest.web": SHELLS,
    "digest.pipeline": SHELLS,
    # stages: open sessions, decide what happens
    "digest.ingest": STAGES,
    "digest.embed": STAGES,
    "digest.planner": STAGES,
    "digest.outbox": STAGES,
    "digest.subscribers": STAGES,
    "digest.health": STAGES,
    # parts: pure stages, and the one owner of each outside resource
    "digest.sources": PARTS,
    "digest.filters": PARTS,
    "digest.scoring": PARTS,
    "digest.email": PARTS,
    "digest.mail": PARTS,
    "digest.semantic": PARTS,
    "digest.links": PARTS,
    "digest.schedule": PARTS,
    # base: the schema and sessions, settings, errors, plain values, utilities
    "digest": BASE,  # the package itself (__version__)
    "digest.store": BASE,
    "digest.config": BASE,
    "digest.values": BASE,
    "digest.errors": BASE,
    "digest.keys": BASE,
    "digest.text": BASE,
    "digest.resources": BASE,
    "digest.logs": BASE,
    "digest.gcpause": BASE,
}
NAMES = {SHELLS: "shell", STAGES: "stage", PARTS: "part", BASE: "base"}

PURE = ["digest.filters", "digest.scoring", "digest.email", "digest.text", "digest.values"]
# What a pure stage must not reach for: the store, the network, the clock.
IMPURE_IMPORTS = (
    "sqlalchemy",
    "digest.store",
    "httpx",
    "aiosmtplib",
    "smtplib",
    "socket",
    "asyncio",
    "urllib.request",
    "time",
)
CLOCK_CALLS = {"now", "today", "utcnow", "time", "monotonic"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, int]]:
    path = MODULES[name]
    return imports_in(path.read_text(encoding="utf-8"), name, package=path.name == "__init__.py")


def imports_in(source: str, name: str, *, package: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import in `source`, nested ones included."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([module] if module else [])])
            found.append((module, node.lineno))
            # `from digest import planner` imports the module digest.planner
            found.extend(
                (f"{module}.{alias.name}", node.lineno)
                for alias in node.names
                if f"{module}.{alias.name}" in MODULES
            )
    return found


def layer_of(module: str) -> int | None:
    """The layer of a digest module (a submodule takes its package's layer).

    The entry "digest" is the top-level package alone: a new package must be
    placed, not fall through to the base layer.
    """
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return LAYERS["digest"] if module == "digest" else None


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in MODULES if layer_of(name) is None]
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    own = layer_of(name)
    assert own is not None
    upward = [
        f"line {line}: {module} ({NAMES[theirs]}) from a {NAMES[own]}"
        for module, line in imports_of(name)
        if module.startswith("digest") and (theirs := layer_of(module)) is not None and theirs > own
    ]
    assert not upward, f"{name} imports upward: {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_nothing_below_the_cli_imports_it(name: str) -> None:
    if name.startswith("digest.cli") or name == "digest.__main__":
        return
    cli = [f"line {line}: {m}" for m, line in imports_of(name) if m.startswith("digest.cli")]
    assert not cli, f"{name} imports the CLI: {cli}"


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


PURE_MODULES = sorted(name for name in MODULES if any(in_package(name, p) for p in PURE))


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_stages_touch_no_session_clock_or_network(name: str) -> None:
    impure = [
        f"line {line}: {module}"
        for module, line in imports_of(name)
        if any(in_package(module, bad) for bad in IMPURE_IMPORTS)
    ]
    assert not impure, f"{name} is a pure stage but imports {impure}"
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    clock = [
        f"line {node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert not clock, f"{name} is a pure stage but reads the clock: {clock}"


def package_of(module: str) -> str:
    """The entry of LAYERS a module belongs to (its stage's package)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return ".".join(parts[:end])
    return module


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_packages_import_each_other_without_cycles() -> None:
    """Same-layer packages may import each other, but only one way round."""
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        own = package_of(name)
        for module, _line in imports_of(name):
            theirs = package_of(module)
            if module.startswith("digest") and theirs != own and theirs != "digest":
                edges.setdefault(own, set()).add(theirs)
    assert cycle_in(edges) is None, f"packages import each other in a circle: {cycle_in(edges)}"


def test_the_checker_sees_upward_and_relative_imports() -> None:
    """The rules can fail: the resolution they rest on finds what a bad import would add."""
    assert layer_of("digest.email.render") == PARTS
    assert layer_of("digest.planner.plan") == STAGES
    assert layer_of("digest.cli.app") == SHELLS
    assert layer_of("digest.sources.hf_api") == PARTS
    top = imports_in("from digest import planner\n", "digest.email.render")
    assert ("digest.planner", 1) in top
    assert ("digest.email.planner", 2) in imports_in(
        "\nfrom .planner import x\n", "digest.email.render"
    )
    assert ("digest.errors", 1) in imports_in("from ..errors import E\n", "digest.sources.folder")
    nested = "def f():\n    from digest.cli.app import app\n"
    assert ("digest.cli.app", 2) in imports_in(nested, "digest.email.render")
    assert package_of("digest.scoring.index") == "digest.scoring"
    assert layer_of("digest.newstage.module") is None  # an unplaced package is caught
    assert layer_of("digest") == BASE
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": {"c"}}) is None
