"""The shape of the code base, checked on every run (standard library only: the sources are read,
never imported).

* a module reads in one sitting: at most :data:`MAX_MODULE_LINES` lines, a function at most
  :data:`MAX_FUNCTION_LINES` (benchmarks and the vendored GGUF converter excepted);
* the composition root only wires: no app module (``arena``, ``serving``, ``training``, outside
  their tests, which drive the composed app) imports ``config`` except ``config.settings``;
* no import cycle between project modules, counting imports inside functions, and every import of a
  project module inside a function says why on its own line (``# ...``);
* every ``*.py`` path and every dotted project name the README and ``docs/`` name in backticks exists.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("arena", "config", "serving", "training", "tests", "bench", "scripts")
APPS = ("arena", "serving", "training")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Benchmarks are long scripts with their own set-up; the GGUF converter follows llama.cpp's layout.
SIZE_EXEMPT = ("bench/", "serving/tools/convert_gguf.py")
# Files a worked example in docs/extending.md tells the reader to create (they must not exist yet).
EXAMPLE_NEW_FILES = {"training/recipes/methods/orpo.py", "arena/ratings/profile.py"}
# Paths of other projects the docs quote.
FOREIGN_PATHS = {"kombu/transport/redis.py"}
DOCS = ("README.md", "docs/*.md")


@cache
def sources() -> dict[str, Path]:
    """Every project module by dotted name (``conftest``, ``arena.ratings``, ...)."""
    found = {}
    paths = [p for root in ROOTS for p in (REPO / root).rglob("*.py")] + list(REPO.glob("*.py"))
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


@cache
def tree(module: str) -> ast.Module:
    return ast.parse(sources()[module].read_text(), filename=str(sources()[module]))


def rel(module: str) -> str:
    return sources()[module].relative_to(REPO).as_posix()


def size_checked() -> list[str]:
    return [m for m in sources() if not rel(m).startswith(SIZE_EXEMPT)]


def imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The project modules an import statement loads by name: ``from a import b`` is ``a.b`` when
    that is a module, else ``a`` (its ``__init__``)."""
    known = sources()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    base = node.module or ""
    if node.level:
        package = module.split(".")[: len(module.split(".")) - node.level + (module in _packages())]
        base = ".".join([*package, *([base] if base else [])])
    out = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        out.append(full if full in known else base)
    return [m for m in out if m in known]


@cache
def _packages() -> frozenset[str]:
    return frozenset(m for m, p in sources().items() if p.name == "__init__.py")


def imports(module: str) -> list[tuple[ast.Import | ast.ImportFrom, bool, list[str]]]:
    """(statement, inside a function, project modules it loads) for each import of ``module``."""
    found = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = imported(child, module)
                if targets:
                    found.append((child, local, targets))
            visit(child, local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree(module), False)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_reads_in_one_sitting():
    long = {rel(m): n for m in size_checked() if (n := len(sources()[m].read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_every_function_is_at_most_80_lines():
    long = [
        f"{rel(m)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for m in size_checked()
        for node in ast.walk(tree(m))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_apps_import_nothing_of_config_but_its_settings():
    upward = [
        f"{rel(m)}:{node.lineno} imports {target}"
        for m in sources()
        if m.split(".")[0] in APPS and ".tests" not in m and ".migrations" not in m
        for node, _local, targets in imports(m)
        for target in targets
        if target.split(".")[0] == "config" and target != "config.settings"
    ]
    assert not upward, f"apps import the composition root (move what they need into the app): {upward}"


def test_no_import_cycle_between_project_modules_counting_local_imports():
    graph = {m: {t for _node, _local, targets in imports(m) for t in targets if t != m} for m in sources()}
    assert not cycles(graph), f"import cycles (local imports counted): {cycles(graph)}"


def test_every_import_inside_a_function_says_why():
    silent = []
    for m in sources():
        lines = sources()[m].read_text().splitlines()
        for node, local, _targets in imports(m):
            if local and "#" not in "\n".join(lines[node.lineno - 1 : node.end_lineno]):
                silent.append(f"{rel(m)}:{node.lineno}")
    assert not silent, f"imports of project modules inside functions without a '# reason': {silent}"


def doc_spans() -> list[tuple[str, str]]:
    """(document, text) of every backticked span of the README and docs/."""
    files = sorted({p for pattern in DOCS for p in REPO.glob(pattern)})
    return [(p.relative_to(REPO).as_posix(), m.group(1)) for p in files for m in re.finditer(r"`([^`\n]+)`", p.read_text())]


def test_every_python_path_the_docs_name_exists():
    names = {p.name for p in sources().values()}
    missing = []
    for doc, span in doc_spans():
        for path in re.findall(r"[\w./-]+\.py\b", span):
            if path in FOREIGN_PATHS or path in EXAMPLE_NEW_FILES:
                continue
            if not ((REPO / path).is_file() if "/" in path else path in names):
                missing.append(f"{doc}: {path}")
    assert not missing, f"the docs name files that do not exist: {missing}"
    assert not [p for p in EXAMPLE_NEW_FILES if (REPO / p).exists()], "a worked example's new file exists: rename it"


def resolves(dotted: str) -> bool:
    """``arena.quality.rules.vote_checks``: the longest module prefix exists and, when a name
    follows it, the module's text contains that name."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        module = ".".join(parts[:end])
        if module in sources():
            rest = parts[end:]
            return not rest or re.search(rf"\b{re.escape(rest[0])}\b", sources()[module].read_text()) is not None
    return False


def test_every_dotted_project_name_the_docs_use_exists():
    wrong = [
        f"{doc}: {name}"
        for doc, span in doc_spans()
        for name in re.findall(r"(?<![\w./-])(?:arena|config|serving|training)(?:\.\w+)+", span)
        if not name.endswith(".py") and not resolves(name)
    ]
    assert not wrong, f"the docs name modules or names that do not exist: {wrong}"


def test_the_checks_can_fail():
    """The cycle finder and the import reader on known inputs, so a broken check does not pass silently."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    node = ast.parse("from arena import services").body[0]
    assert imported(node, "tests.x") == ["arena.services"]
    node = ast.parse("from arena.ratings import fit_bt").body[0]
    assert imported(node, "tests.x") == ["arena.ratings"]
    assert resolves("arena.quality.rules.vote_checks") and not resolves("arena.quality.rules.no_such_name")
    assert len(size_checked()) > 100 and "tests.test_structure" in sources()
