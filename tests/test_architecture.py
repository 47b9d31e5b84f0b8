"""The house rules of STYLE.md, measured on the source: sizes, floors (imports point inward), no import circles, which
rooms may import which framework, and private dependency APIs only in ``*_private.py`` adapter modules.

Known offenders are allow-listed below by name, each with the helper fixing it; an entry that no longer offends
fails too, so the list only shrinks."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"hegelion_dspy": ROOT / "hegelion_dspy", "hegelion_server": ROOT / "server"}

MAX_MODULE_LINES = 400  # issue 23: every module under ~400 lines (was 500 until the last three were split)
MAX_FUNCTION_LINES = 60  # issue 23: every function under ~60 lines (was 80 until the last seven were split)

# Today's offenders, as "path" (a module) or "path::function": the size they may not grow past, and who shrinks them.
TOO_BIG: dict[str, int] = {}  # none left; a new entry needs the helper who splits it

# Floors, lowest first: a module imports only floors below its own, or rooms of its own package on its floor.
# A room is a subpackage (lms, collect, ...) or a core module. The facade ``hegelion_dspy/__init__`` imports only the
# core eagerly and the rest by name (``_LAZY``), so it sits just above the core.
FLOORS: list[set[str]] = [
    {"errors", "types"},
    {"logwrite", "logread", "litter"},  # logs safely: appending to them, reading them; temp files naming their writer
    {"paths", "store", "checks", "signatures"},
    {"quality"},  # the quality flags: one pure rule over a trace (checks' copy threshold), read by collect and curate
    {""},  # the package facade
    {"lms"},
    {"program"},
    {"collect", "curate"},  # phases 1 and 2: neither imports the other
    {"train"},
    {"eval"},
    {"review"},
    {"cli"},
    {"server"},  # hegelion_server: imports the library, never the reverse
]

# Import arrows that break a floor rule on purpose.
ALLOWED_ARROWS = {
    # `hegelion serve` is the CLI's door to the server's door: it only starts it.
    ("hegelion_dspy.cli.serve", "hegelion_server.__main__"),
}

# Which rooms may import a framework at all, and which only inside functions.
FRAMEWORKS: dict[str, tuple[set[str], bool]] = {
    # name: (rooms that may import it, lazily only)
    "mcp": ({"server"}, False),
    "mcp_types": ({"server"}, False),
    "click": ({"cli"}, False),
    "torch": ({"train", "eval"}, True),
    "transformers": ({"train", "eval"}, True),
    "trl": ({"train", "eval"}, True),
    "peft": ({"train", "eval"}, True),
    "starlette": ({"review"}, False),
    "dspy": ({"signatures", "program", "lms", "collect", "train", "eval"}, False),
}

# Attributes of dspy.settings that are its public interface; any other is DSPy's internals.
PUBLIC_DSPY_SETTINGS = {"context", "configure", "lm", "adapter"}
# Names that exist only below a dependency's public API (grep, comments and docstrings excluded).
PRIVATE_NAMES = re.compile(r"\b(_deprecation|_lowlevel_server|_request_handlers|_mcp_server)\b")


@dataclass(frozen=True)
class Import:
    target: str  # the dotted module name imported
    line: int
    lazy: bool  # inside a function (or under TYPE_CHECKING): not run when the module is imported


@dataclass(frozen=True)
class Module:
    name: str  # hegelion_dspy.collect.run, hegelion_server.app
    path: Path
    tree: ast.Module

    @property
    def shown(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def room(self) -> str:
        if self.name.startswith("hegelion_server"):
            return "server"
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ""

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def _modules() -> list[Module]:
    found = []
    for top, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found.append(Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return found


MODULES = _modules()
NAMES = {m.name for m in MODULES}


def _walk(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            inner = True
        yield child, inner
        yield from _walk(child, inner)


def imports(module: Module) -> list[Import]:
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found = []
    for node, lazy in _walk(module.tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(target, node.lineno, lazy))
            # `from . import charts` imports the submodule charts
            found += [
                Import(f"{target}.{a.name}", node.lineno, lazy) for a in node.names if f"{target}.{a.name}" in NAMES
            ]
    return found


def _ours(target: str) -> str | None:
    """The module of ours an import runs (its longest known prefix), or None for a dependency."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in NAMES:
            return ".".join(parts[:end])
    return None


def _floor(module: Module) -> int:
    for level, rooms in enumerate(FLOORS):
        if module.room in rooms:
            return level
    raise AssertionError(f"{module.shown}: no floor for room {module.room!r}; add it to FLOORS here")


BY_NAME = {m.name: m for m in MODULES}


def _sizes() -> dict[str, int]:
    sizes = {}
    for module in MODULES:
        sizes[module.shown] = len(module.path.read_text(encoding="utf-8").splitlines())
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{module.shown}::{node.name}"
                sizes[key] = max(sizes.get(key, 0), (node.end_lineno or node.lineno) - node.lineno + 1)
    return sizes


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    over = []
    for key, lines in _sizes().items():
        limit = MAX_FUNCTION_LINES if "::" in key else MAX_MODULE_LINES
        if lines > max(limit, TOO_BIG.get(key, 0)):
            grown = f" (allowed {TOO_BIG[key]} until it is split)" if key in TOO_BIG else ""
            over.append(f"{key}: {lines} lines, the limit is {limit}{grown}")
    assert over == [], "split by audience (STYLE.md):\n" + "\n".join(over)


def test_the_allow_list_of_big_rooms_only_shrinks() -> None:
    sizes = _sizes()
    fixed = []
    for key in TOO_BIG:
        limit = MAX_FUNCTION_LINES if "::" in key else MAX_MODULE_LINES
        if sizes.get(key, 0) <= limit:
            fixed.append(f"{key}: now {sizes.get(key, 'gone')}, within the limit: delete its TOO_BIG entry")
    assert fixed == [], "\n".join(fixed)


def test_imports_point_inward() -> None:
    upward = []
    for module in MODULES:
        for imp in imports(module):
            target = _ours(imp.target)
            if target is None or target == module.name or (module.name, target) in ALLOWED_ARROWS:
                continue
            other = BY_NAME[target]
            here, there = _floor(module), _floor(other)
            same_room = other.room == module.room and module.room != ""
            if there > here or (there == here and not same_room and module.name != "hegelion_dspy"):
                upward.append(f"{module.shown}:{imp.line}: imports {target} (floor {there} >= its own {here})")
    assert upward == [], "imports point inward (STYLE.md 1):\n" + "\n".join(upward)


def test_no_import_circles() -> None:
    graph = {m.name: {t for i in imports(m) if (t := _ours(i.target)) and t != m.name} for m in MODULES}
    # importing a module runs its packages' __init__ first: not an arrow from the module, so leave those out
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    circles = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_frameworks_are_imported_only_in_their_rooms() -> None:
    misplaced = []
    for module in MODULES:
        room = module.room or module.name.rpartition(".")[2]
        for imp in imports(module):
            top = imp.target.split(".")[0]
            if top not in FRAMEWORKS:
                continue
            rooms, lazily = FRAMEWORKS[top]
            if room not in rooms:
                misplaced.append(f"{module.shown}:{imp.line}: imports {imp.target}; only {sorted(rooms)} may")
            elif lazily and not imp.lazy:
                misplaced.append(f"{module.shown}:{imp.line}: imports {imp.target} at import time; import it lazily")
    assert misplaced == [], "\n".join(misplaced)


def _code_only(module: Module) -> str:
    """The module's source without comments and docstrings (strings that are whole statements)."""
    lines = module.path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for number in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[number] = ""
    return "\n".join(line.split("#", 1)[0] if "#" in line else line for line in lines)


def _private_uses(module: Module) -> list[str]:
    found = []
    for imp in imports(module):
        if _ours(imp.target) is None and any(
            p.startswith("_") and not p.startswith("__") for p in imp.target.split(".")
        ):
            found.append(f"{module.shown}:{imp.line}: imports {imp.target}")
    attributes = [node for node in ast.walk(module.tree) if isinstance(node, ast.Attribute)]
    for node in attributes:
        if ast.unparse(node.value) == "dspy.settings" and node.attr not in PUBLIC_DSPY_SETTINGS:
            found.append(f"{module.shown}:{node.lineno}: dspy.settings.{node.attr}")
    for number, line in enumerate(_code_only(module).splitlines(), 1):
        found += [f"{module.shown}:{number}: {m.group(1)}" for m in PRIVATE_NAMES.finditer(line)]
    return found


def test_private_dependency_apis_only_in_adapter_modules() -> None:
    found = [use for m in MODULES if not m.path.stem.endswith("_private") for use in _private_uses(m)]
    assert found == [], "below a dependency's public API: go through (or add) a *_private.py adapter:\n" + "\n".join(
        found
    )


def test_the_adapter_modules_are_the_ones_that_say_why() -> None:
    adapters = {m.shown: m for m in MODULES if m.path.stem.endswith("_private")}
    assert set(adapters) == {"hegelion_dspy/lms/dspy_private.py", "server/sdk_private.py"}
    for shown, module in adapters.items():
        doc = ast.get_docstring(module.tree) or ""
        assert "why" in doc and "Checked against" in doc, f"{shown}: say why and the version checked against"
        assert _private_uses(module), f"{shown}: uses nothing private any more; delete it"


# Names defined at the top of more than one module on purpose: each module has its own.
SHARED_NAMES = {
    "CHECKED_AGAINST",  # each *_private.py adapter: the version it was checked against
    "PROG",  # each old script name of the CLI
    "INSTALL_HINT",  # each optional extra: what to install
    "HOST",  # the MCP server and the review app: each listens on its own host and port
    "DEFAULT_PORT",
}


def test_a_class_or_constant_name_means_one_thing() -> None:
    defined: dict[str, list[str]] = {}
    for module in MODULES:
        for node in module.tree.body:
            names = [node.name] if isinstance(node, ast.ClassDef) else []
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                # a module's private constant (``_WORD``, a regex of its own) is not a twin; a private class still is
                names = [
                    t.id
                    for t in targets
                    if isinstance(t, ast.Name) and t.id.isupper() and len(t.id) > 2 and not t.id.startswith("_")
                ]
            for name in names:
                defined.setdefault(name, []).append(module.shown)
    twins = {name: where for name, where in defined.items() if len(where) > 1 and name not in SHARED_NAMES}
    assert twins == {}, "one name, one thing: rename one, or import it from the other"
