"""The documentation checked against the code: settings, commands, make targets, links, paths.

``README.md`` and ``docs/*.md`` state facts a reader acts on: a variable's name and default, a
``manage.py`` command and its flags, a ``make`` target, a file to open. Each test reads those
facts out of the Markdown and compares them with what the code declares, so a renamed setting,
a changed default, a removed flag or a moved file fails here instead of misleading the next
reader. Settings are read from ``config/settings.py`` by parsing its ``env_*`` calls (not by
importing it), so the default is the one written in the code, in production mode.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from arena.quality.exclusions import reasons
from tests.helpers import REPO
from training.models import Job
from training.recipes.config import PRESETS

DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]
CONFIGURATION = REPO / "docs" / "configuration.md"
ENV_HELPERS = {"env_str", "env_int", "env_float", "env_bool", "env_list", "env_secret", "env_url"}
VARIABLE = re.compile(r"\b(?:ARENA|DJANGO|CELERY)_[A-Z0-9_]*[A-Z0-9]\b")

# Variables whose default a table gives in words because it is not one literal value.
DEFAULT_IN_WORDS = {
    "ARENA_IDENTITY_WORDS": "a list of 35 names",
    "ARENA_ADMIN_PASSWORD": "admin only in development mode, else required",
    "CELERY_BROKER_URL": "REDIS_URL, else the filesystem broker",
}

# Files a worked example of docs/extending.md creates.
NEW_IN_WORKED_EXAMPLES = {"arena/ratings/profile.py", "training/recipes/methods/orpo.py"}

# Where the settings' defaults point, as the docs write them (relative to the repository).
_FAKE_REPO = PurePosixPath("/checkout/repo")


@functools.cache
def settings_read() -> dict[str, object]:
    """Every variable ``config/settings.py`` reads through an ``env_*`` helper, with its default."""
    tree = ast.parse((REPO / "config" / "settings.py").read_text())
    namespace = _default_namespace(tree)
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ENV_HELPERS):
            continue
        if not (node.args and isinstance(node.args[0], ast.Constant)):
            continue  # env_secret(name) over a tuple of names: each is read again by name elsewhere
        default = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "default"), None
        )
        value = None if default is None else eval(compile(ast.Expression(default), "settings", "eval"), namespace)
        found[node.args[0].value] = value
    return found


def _default_namespace(tree: ast.Module) -> dict[str, object]:
    """Names a default may use: production mode, the repository at a fixed fake path, and the
    constants imported from the pure rating modules (they hold the one list of each choice)."""
    namespace: dict[str, object] = {
        "DEBUG": False, "BASE_DIR": _FAKE_REPO, "ARENA_DATA_DIR": _FAKE_REPO / "var", "str": str, "Path": PurePosixPath,
    }
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("arena."):
            module = importlib.import_module(node.module)
            namespace.update({alias.name: getattr(module, alias.name) for alias in node.names})
    return namespace


def as_doc_text(value: object) -> str:
    """A default as the docs write it: true/false, numbers without a trailing .0, paths relative."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_doc_text(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).replace(f"{_FAKE_REPO}/", "").replace(f"{_FAKE_REPO.parent}/", "../")
    return text.rstrip("/")


def variable_tables(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line, variables, defaults) of each row of the page's "| variable | default | ..." tables."""
    rows = []
    in_table = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:2] == ["variable", "default"]:
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and not set(cells[0]) <= set("-: "):
            names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
            rows.append((number, names, re.findall(r"`([^`]*)`", cells[1])))
    return rows


def test_every_setting_is_on_the_configuration_page():
    listed = {name for _, names, _ in variable_tables(CONFIGURATION) for name in names}
    missing = sorted(set(settings_read()) - listed)
    assert not missing, f"config/settings.py reads these, docs/configuration.md does not list them: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_variable_in_a_settings_table_is_read_by_the_code(page):
    read = settings_read()
    unknown = [(line, name) for line, names, _ in variable_tables(page) for name in names if name not in read]
    assert not unknown, f"{page.name} lists variables config/settings.py does not read: {unknown}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_default_in_a_settings_table_is_the_codes(page):
    read = settings_read()
    wrong = []
    for line, names, defaults in variable_tables(page):
        for index, name in enumerate(names):
            if name not in read or name in DEFAULT_IN_WORDS:
                continue
            code = as_doc_text(read[name]) if read[name] is not None else ""
            if index >= len(defaults):
                if code:
                    wrong.append(f"line {line}: {name} has no default written (the code's is {code!r})")
                continue
            doc = defaults[index].rstrip("/")
            if not _same(doc, code):
                wrong.append(f"line {line}: {name} is {doc!r} in the docs, {code!r} in config/settings.py")
    assert not wrong, f"{page.name}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_default_given_in_prose_is_the_codes(page):
    """"`ARENA_GATE_PROMPTS` (20)", "`ARENA_OUTLIER_Z` (`4`)", "`ARENA_GATE_HOLD` (off)": a number
    or on/off in brackets right after a variable's name is its default."""
    read = settings_read()
    words = {"on": "true", "off": "false"}
    wrong = []
    for name, value in re.findall(r"`([A-Z][A-Z0-9_]+)`\s+\(`?(-?[0-9.]+|on|off)`?(?:\s*[a-z]{1,3})?[),]", page.read_text()):
        if name in read and name not in DEFAULT_IN_WORDS:
            code = as_doc_text(read[name])
            if not _same(words.get(value, value), code):
                wrong.append(f"{name} is {value!r} in the text, {code!r} in config/settings.py")
    assert not wrong, f"{page.name}: {wrong}"


def _same(doc: str, code: str) -> bool:
    try:
        return float(doc) == float(code)
    except ValueError:
        return doc == code


def test_every_variable_the_docs_name_exists():
    """A variable named anywhere in the docs is read by the settings or used by the repository's
    scripts, compose file or tests (ARENA_HOSTNAME, ARENA_REQUIRE_REAL_PARTS, ...)."""
    read = set(settings_read())
    elsewhere = _text_outside_docs()
    unknown = set()
    for page in PAGES:
        for name in VARIABLE.findall(page.read_text()):
            base = name.removesuffix("_FILE")
            if base not in read and not re.search(rf"\b{base}\b", elsewhere):
                unknown.add(f"{page.name}: {name}")
    assert not unknown, f"variables named in the docs that nothing reads: {sorted(unknown)}"


def _text_outside_docs() -> str:
    names = ("*.py", "*.sh", "*.yml", "*.yaml", "Makefile", "Dockerfile", "Caddyfile", "run")
    files = {path for pattern in names for path in REPO.rglob(pattern)}
    skip = (".venv", ".venv-engine", "var", "node_modules", ".git")
    return "\n".join(
        path.read_text(errors="replace") for path in sorted(files)
        if path.is_file() and not any(part in skip for part in path.relative_to(REPO).parts)
        and path.name != "test_docs.py"
    )


def test_the_readme_is_a_front_door_linking_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    unlinked = [page.name for page in DOCS if f"(docs/{page.name}" not in readme]
    assert not unlinked, f"README.md links no docs/ page named {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{page.name}: links to nothing: {broken}"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_the_page_names_exists(page):
    """Backticked paths under the repository's own folders (`bench/load.py`, `arena/ratings/`)."""
    roots = ("arena/", "serving/", "training/", "config/", "bench/", "tests/", "scripts/", "deploy/",
             "requirements/", "data/", "templates/", "static/", ".ci/")
    missing = []
    for path in re.findall(r"`([.\w/-]+(?:\.\w+|/))`", page.read_text()):
        if path.startswith(roots) and path not in NEW_IN_WORKED_EXAMPLES and not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{page.name} names files that do not exist: {sorted(set(missing))}"


def test_every_make_target_the_docs_name_exists():
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), flags=re.MULTILINE))
    named = {target for page in PAGES for target in re.findall(r"`make ([a-z][\w-]*)", page.read_text())}
    assert named and named <= targets, f"make targets the docs name that the Makefile lacks: {named - targets}"


def command_lines() -> list[tuple[str, str, str]]:
    """(page, command, the rest of its line) for each `manage.py COMMAND ...` the docs show,
    joining a code block's continuation lines (ending in a backslash)."""
    found = []
    for page in PAGES:
        text = re.sub(r"\\\n\s*", " ", page.read_text())
        for match in re.finditer(r"manage\.py ([a-z_]+)([^\n`]*)", text):
            found.append((page.name, match.group(1), match.group(2).split("#")[0]))
    return found


def test_every_management_command_and_flag_the_docs_show_exists():
    commands = get_commands()
    wrong = []
    for page, name, rest in command_lines():
        if name not in commands:
            wrong.append(f"{page}: manage.py {name} is no command")
            continue
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        options = {option: action for action in parser._actions for option in action.option_strings}
        for flag, choices in re.findall(r"(--[a-z][\w-]*)(?:[ =]\{?([\w-]+(?:[|,][\w-]+)+)\}?)?", rest):
            if flag not in options:
                wrong.append(f"{page}: manage.py {name} has no {flag}")
            elif choices and options[flag].choices is not None:
                shown = set(re.split(r"[|,]", choices))
                if shown != set(options[flag].choices):
                    wrong.append(f"{page}: manage.py {name} {flag} takes {sorted(options[flag].choices)}, "
                                 f"the page shows {sorted(shown)}")
    assert not wrong, "\n".join(wrong)


def test_the_battle_api_page_lists_every_frame_type_and_error_code():
    """docs/battle-api.md against the consumers: every frame type either side sends, and every
    error code a refused frame can carry (``ArenaError`` codes and the consumer's own)."""
    page = (REPO / "docs" / "battle-api.md").read_text()
    consumers = (REPO / "arena" / "consumers.py").read_text()
    sent = set(re.findall(r'"type": "(\w+)"', consumers))
    received = set(re.findall(r'"(\w+)": self\._on_', consumers))
    documented = set(re.findall(r'\{"type": "(\w+)"', page))
    assert sent | received == documented, f"code only: {(sent | received) - documented}; page only: {documented - sent - received}"

    code = "\n".join(path.read_text() for path in (REPO / "arena").rglob("*.py") if "tests" not in path.parts)
    raised = set(re.findall(r'(?:ArenaError|_error|__init__)\(\s*"(\w+)"', code)) | set(re.findall(r'"code": "(\w+)"', consumers))
    listed = set(re.findall(r"`(\w+)`", page.split("Error codes:", 1)[1].split("\n\n", 1)[0]))
    assert raised == listed, f"code only: {raised - listed}; page only: {listed - raised}"


def test_the_abuse_page_lists_every_reason_a_vote_is_left_out():
    page = (REPO / "docs" / "abuse-and-privacy.md").read_text()
    table = page.split("**Votes left out**", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert listed and set(listed) == {key for key, _ in reasons()}, listed


def test_the_fine_tunes_page_lists_every_training_method_and_preset():
    page = (REPO / "docs" / "fine-tunes.md").read_text()
    methods = re.findall(r"^\| `(\w+)` \|", page, flags=re.MULTILINE)
    assert methods == list(Job.Method.values), f"the page's method table: {methods}"
    presets = {name for by_name in PRESETS.values() for name in by_name}
    shown = set(re.findall(r"`([a-z0-9-]+)`", re.search(r"preset \(([^)]*)\)", page).group(1)))
    assert shown == presets, f"the page names presets {sorted(shown)}, training.recipes.config has {sorted(presets)}"


def test_the_deployment_page_names_every_compose_service_and_its_commands():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    page = (REPO / "docs" / "deployment.md").read_text()
    missing = [name for name in compose["services"] if f"`{name}`" not in page]
    assert not missing, f"docs/deployment.md does not name the compose services {missing}"
    for name in ("web", "worker", "beat", "training-worker"):
        command = " ".join(compose["services"][name]["command"]).replace(" --loglevel INFO", "")
        assert f"`{command}`" in page, f"the Kubernetes table's {name} command is not compose's: {command}"


def test_the_configuration_page_lists_every_setting_read_under_another_name():
    """A variable assigned to a Python name other than its own (Django's DJANGO_* aside) is in
    the page's "| variable | read as |" table, and the table lists no other."""
    tree = ast.parse((REPO / "config" / "settings.py").read_text())
    renamed = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            for call in ast.walk(node.value):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in ENV_HELPERS
                        and call.args and isinstance(call.args[0], ast.Constant)):
                    variable = call.args[0].value
                    public = [name for name in names if not name.startswith("_")]
                    if public and variable not in public and not variable.startswith("DJANGO_"):
                        renamed[variable] = public[0]
    page = CONFIGURATION.read_text()
    listed = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `settings\.([A-Z0-9_]+)`", page, flags=re.MULTILINE))
    assert listed == renamed


def test_the_development_page_says_why_each_runtime_dependency_is_there():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[=<>~!; ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    table = (REPO / "docs" / "development.md").read_text().split("## Dependencies and why", 1)[1].lower()
    missing = sorted(name for name in names if not re.search(rf"(^|[\s,(]){re.escape(name)}\b", table))
    assert not missing, f"docs/development.md's dependency table does not say why these are there: {missing}"


def test_every_flag_of_a_documented_command_is_shown_somewhere():
    """The reverse: a command the docs show has none of its own flags left unmentioned."""
    commands = get_commands()
    shown: dict[str, set[str]] = {}
    for _, name, rest in command_lines():
        shown.setdefault(name, set()).update(re.findall(r"--[a-z][\w-]*", rest))
    django_own = {"--help", "--version", "--verbosity", "--settings", "--pythonpath", "--traceback", "--no-color",
                  "--force-color", "--skip-checks"}
    unshown = []
    for name, flags in shown.items():
        if commands.get(name) in (None, "django.core"):
            continue  # Django's own commands (migrate, check) are Django's to document
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        own = {option for action in parser._actions for option in action.option_strings if option.startswith("--")}
        unshown += [f"manage.py {name} {flag}" for flag in sorted(own - django_own - flags)]
    assert not unshown, f"flags no page shows: {unshown}"


def test_the_battle_api_page_gives_each_server_frame_the_fields_the_consumer_sends():
    consumers = ast.parse((REPO / "arena" / "consumers.py").read_text())
    sent: dict[str, tuple[set[str], bool]] = {}
    for node in ast.walk(consumers):
        if isinstance(node, ast.Dict):
            keys = {key.value: value for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant)}
            if isinstance(keys.get("type"), ast.Constant):
                sent[keys["type"].value] = (set(keys) - {"type"}, None in node.keys)  # None: a ** spread
    page = (REPO / "docs" / "battle-api.md").read_text()
    wrong = []
    for cell in re.findall(r'^\| `(\{"type": .*?\})`', page, flags=re.MULTILINE):
        frame = re.match(r'\{"type": "(\w+)"', cell).group(1)
        top_level = re.sub(r"\{[^{}]*\}", "", cell[1:-1])  # nested objects' fields are theirs
        top_level = re.sub(r':\s*"[^"]*"(?:\\\|"[^"]*")*', "", top_level)  # values: "side": "a"\|"b"
        documented = set(re.findall(r'"(\w+)"', top_level)) - {"type", frame}
        if frame in sent:
            fields, spread = sent[frame]
            if not fields <= documented or (not spread and fields != documented):
                wrong.append(f"{frame}: the page shows {sorted(documented)}, the consumer sends {sorted(fields)}")
    assert not wrong, "\n".join(wrong)
