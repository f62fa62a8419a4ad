"""The house's layers, read from the source: no package imports a higher one, no import cycles, short scripts."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Each package, and the packages of this project it may import: the layers of README's "Layout", lowest first.
MAY_IMPORT = {
    "datamodules": set(),
    "models": {"datamodules"},
    "loggers": set(),
    "callbacks": {"models", "datamodules", "loggers"},
    "cli": {"callbacks", "models", "datamodules", "loggers"},
    "scripts": {"cli", "callbacks", "models", "datamodules", "loggers"},
}
PACKAGES = set(MAY_IMPORT) - {"scripts"}
SCRIPTS = {path.stem for path in (ROOT / "scripts").glob("*.py")}
MOST_SCRIPT_LINES = 100
MOST_FUNCTION_LINES = 60  # of code, the docstring left out
# The benchmark keeps its measuring code in one file, where it is read together (see the issue of the house).
LONGER_SCRIPTS = {"benchmark"}


def module_name(path: Path) -> str:
    """``cli/commands/fit.py`` -> ``cli.commands.fit``; ``cli/__init__.py`` -> ``cli``; scripts by file name."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Every module of the project's packages and scripts, by module name."""
    files = [path for package in MAY_IMPORT for path in sorted((ROOT / package).rglob("*.py"))]
    return {module_name(path): path for path in files}


MODULES = source_files()


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports, anywhere in it (also inside functions), as absolute names.

    ``from pkg import name`` counts as ``pkg.name`` where that is a module of the project, else as ``pkg``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                inner = f"{node.module}.{alias.name}"
                found.add(inner if inner in MODULES else node.module)
    return found


def project_imports(path: Path) -> set[str]:
    """The imports of ``path`` that are modules of this project, or the name of another script."""
    return {name for name in imports(path) if name.split(".")[0] in PACKAGES or name in SCRIPTS}


def layer(module: str) -> str:
    """The package a module belongs to (``scripts`` for the scripts)."""
    return "scripts" if MODULES[module].parent == ROOT / "scripts" else module.split(".")[0]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer_or_a_script(module: str) -> None:
    own = layer(module)
    imported = project_imports(MODULES[module])
    higher = {name for name in imported if name.split(".")[0] in PACKAGES - MAY_IMPORT[own] - {own}}
    assert not higher, f"{module} ({own}) imports {sorted(higher)}: see the layers in README's Layout"
    scripts = {name for name in imported if name in SCRIPTS}
    assert not scripts, f"{module} imports the script(s) {sorted(scripts)}: move what they share into cli/"
    if own == "cli" and not module.startswith("cli.commands"):
        commands = {name for name in imported if name.startswith("cli.commands")}
        assert not commands, f"{module} imports the commands {sorted(commands)}: commands use the machinery, not back"


def test_no_import_cycles() -> None:
    """Not even inside a package: a module that imports its own package's ``__init__`` (which imports the module)."""
    graph = {module: {name for name in project_imports(path) if name in MODULES} for module, path in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(module) :] + [module])}")
        if module not in done:
            for name in sorted(graph[module] - {module}):
                visit(name, [*path, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_scripts_only_start_commands() -> None:
    for name in SCRIPTS - LONGER_SCRIPTS:
        path = ROOT / "scripts" / f"{name}.py"
        lines = len(path.read_text().splitlines())
        assert lines <= MOST_SCRIPT_LINES, f"scripts/{name}.py has {lines} lines: put its work in cli/"
        assert f"cli.commands.{name}" in imports(path), f"scripts/{name}.py does not start cli/commands/{name}.py"


def test_only_the_command_line_changes_sys_path() -> None:
    changes = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            is_path = isinstance(node, ast.Attribute) and node.attr == "path"
            if is_path and isinstance(node.value, ast.Name) and node.value.id == "sys":
                changes.append(module)
    assert set(changes) == {"cli.environment"}, changes


def test_no_function_is_long() -> None:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                if body and body[-1].end_lineno - body[0].lineno + 1 > MOST_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}")
    assert not long, f"functions over {MOST_FUNCTION_LINES} lines of code: {long}"


def test_every_command_is_installed_as_its_script() -> None:
    """pyproject's [project.scripts] name each command that scripts/ starts, as lic-NAME."""
    import tomllib

    installed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    expected = {f"lic-{name.replace('_', '-')}": f"cli.commands.{name}:main" for name in SCRIPTS - LONGER_SCRIPTS}
    assert installed == expected
