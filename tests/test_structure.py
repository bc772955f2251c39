"""The code's shape: layers in one direction, no import circles, a light command line, and
a README and docs a newcomer can use.  Read from the source (AST), nothing is run but the
import check."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("capture", "stream", "web")
# The command line is the composition root: it may start the web server, from inside the
# serve command's handler only, so that no other command loads the web stack.
COMMAND_LINE = ("stream/cli.py", "stream/commands/")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def module_name(rel: str) -> str:
    name = rel.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """``(module imported, at module level?)`` for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        top = id(node) not in nested
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield short(alias.name), top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield short(node.module), top
            for alias in node.names:
                yield short(f"{node.module}.{alias.name}"), top


def short(name: str) -> str:
    """The repository's name for an installed module: ``depthstream.stream.x`` is ``stream.x``."""
    return name.removeprefix("depthstream.")


def package_of(name: str) -> str:
    return name.split(".")[0]


def test_capture_knows_nothing_of_stream_or_web() -> None:
    found = [
        (rel, name)
        for rel, path in modules()
        if rel.startswith("capture/")
        for name, _ in imports(path)
        if package_of(name) in ("stream", "web")
    ]
    assert found == []


def test_stream_never_imports_web_but_to_start_the_server() -> None:
    found = []
    for rel, path in modules():
        if not rel.startswith("stream/"):
            continue
        for name, top in imports(path):
            if package_of(name) != "web":
                continue
            allowed = rel == "stream/commands/serve.py" and not top
            if not allowed:
                found.append((rel, name, "module level" if top else "in a function"))
    assert found == []


def project_imports(path: Path, known: set[str], module_level_only: bool) -> set[str]:
    """The project's modules (and packages) that the file imports."""
    found = set()
    for imported, top in imports(path):
        if module_level_only and not top:
            continue
        while imported and imported not in known:
            imported = imported.rpartition(".")[0]
        if imported:
            found.add(imported)
    return found


def test_config_is_a_leaf() -> None:
    """The settings import nothing of the project but their error type, capture's options and
    the model registry (plain data, itself importing nothing of the project)."""
    known = {module_name(rel) for rel, _ in modules()}
    found = project_imports(ROOT / "stream" / "config.py", known, module_level_only=False)
    allowed = {"stream", "stream.errors", "capture", "capture.options"}
    assert found <= allowed | {"stream.model", "stream.model.registry"}


def test_there_are_no_import_circles() -> None:
    """Module-level imports between the project's own modules form no cycle."""
    known = {module_name(rel): path for rel, path in modules()}
    graph = {
        name: project_imports(path, set(known), module_level_only=True) - {name}
        for name, path in known.items()
    }
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            # A package's __init__ is entered before its modules: not a circle of code.
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_command_line_loads_neither_the_web_stack_nor_the_bench() -> None:
    script = (
        "import depthstream.stream.cli, sys; "
        "print('aiortc' in sys.modules, 'depthstream.stream.bench' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_whole_config_is_read_only_where_pipelines_are_assembled() -> None:
    """Below the commands, modules take the sections they use, not the whole Config."""
    assembling = (
        "stream/assembly.py",
        "stream/outputs.py",
        "stream/api.py",
        "stream/bench/",
        *COMMAND_LINE,
        "web/",
    )
    found = [
        rel
        for rel, path in modules()
        if not rel.startswith(assembling) and rel != "stream/config.py"
        for name, _ in imports(path)
        if name == "stream.config.Config"
    ]
    assert found == []


def test_product_code_carries_no_lab_notes() -> None:
    """Measurements and trial histories belong in commit messages and docs/performance.md."""
    files = [path for _, path in modules()] + [ROOT / "config.toml"]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "hand-run" in line.lower()
    ]
    assert found == []


def test_readme_is_a_users_document_that_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 260
    blocks = [readme[i + 1] for i, line in enumerate(readme[:40]) if line.strip() == "```sh"][:2]
    assert blocks == ["./scripts/setup && .venv/bin/depthstream run sample", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci


@pytest.mark.parametrize(
    "name",
    [
        "performance.md",
        "runtimes.md",
        "correctness.md",
        "temporal.md",
        "web.md",
        "reliability.md",
        "deploy.md",
        "robot.md",
        "models.md",
    ],
)
def test_the_docs_the_readme_points_to_exist(name: str) -> None:
    doc = ROOT / "docs" / name
    assert doc.is_file() and f"docs/{name}" in (ROOT / "README.md").read_text()


def test_the_performance_page_is_what_the_bench_writes() -> None:
    """Its head and its shortfalls section are the bench's own text, so the page is one
    bench command's output, not hand-written."""
    from depthstream.stream.bench.report import HOW_TO_READ

    page = (ROOT / "docs" / "performance.md").read_text()
    assert page.startswith("# Performance\n\nWritten by the benchmark; regenerate it with:")
    assert HOW_TO_READ in page and "\n## Known to fall short\n" in page
    command = page.split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert command.startswith("depthstream bench ") and "--markdown docs/performance.md" in command
