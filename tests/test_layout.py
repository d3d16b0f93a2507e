"""The layout's promises, checked on the source: the signing library stands alone, the
application has no import cycles, and no module grows past what a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("signing", "pipeline", "api")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Return the project modules that ``path`` imports (at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def test_signing_imports_nothing_of_the_application():
    modules = _modules()
    offenders = {name: sorted(dep for dep in _imports(path, modules)
                              if not dep.startswith("signing"))
                 for name, path in modules.items() if name.startswith("signing")}
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_pipeline_never_imports_the_api():
    # The CLI is a surface like the API (its `serve` starts it); the use cases never are.
    modules = _modules()
    offenders = [name for name, path in modules.items()
                 if name.startswith("pipeline") and not name.startswith("pipeline.cli")
                 and any(dep.startswith("api") for dep in _imports(path, modules))]
    assert offenders == []


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {dep for dep in _imports(path, modules) if dep in modules and dep != name}
             for name, path in modules.items()}
    done: set[str] = set()
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append(trail[trail.index(name):] + [name])
            return
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, [*trail, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    assert cycles == []


def test_pipeline_shows_its_concepts():
    top = [path for path in (ROOT / "pipeline").iterdir() if path.name != "__init__.py"
           and (path.suffix == ".py" or (path / "__init__.py").exists())]
    assert len(top) <= 12, sorted(path.name for path in top)
    for concept in ("forms", "render", "record", "documents", "people", "audit", "outbound"):
        assert (ROOT / "pipeline" / concept / "__init__.py").is_file()


def test_no_module_over_450_lines():
    long = {name: count for name, path in _modules().items()
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_only_config_reads_the_environment():
    # LibreOffice's child process inherits the environment; nothing else reads settings there.
    allowed = {"pipeline.config", "pipeline.render.libreoffice"}
    readers = sorted(name for name, path in _modules().items() if name not in allowed
                     and ("os.environ" in (text := path.read_text(encoding="utf-8"))
                          or "getenv" in text))
    assert readers == []
