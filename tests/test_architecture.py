"""The package's structure: no import cycle among its modules (lazy imports included), and
every entry script starts with its launch command."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "seg_r1"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> seg_r1 modules it imports`` (every import statement, at any depth)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    graph = import_graph()
    assert "seg_r1.segmenters.sam2" in graph["seg_r1.segmenters.factory"]  # lazy edges count
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_every_script_starts_with_its_launch_command():
    scripts = [*(ROOT / "eval").glob("*.py"), *(ROOT / "utils").glob("*.py"),
               *(ROOT / "benchmarks").glob("*.py"), ROOT / "demo" / "seg_r1_web_demo.py"]  # fmt: skip
    for path in scripts:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert "python " in doc, f"{path.relative_to(ROOT)}: no launch command in its docstring"
    for path in (ROOT / "scripts").glob("*.sh"):
        head = "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:15])
        assert "bash scripts/" in head or "python -m" in head, path.name


def test_no_module_over_500_lines():
    """Modules stay readable in one sitting (issue "Architecture": split along the seams)."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not long, long


def test_segmenter_options_are_declared_once():
    """``sam2_checkpoint`` (like every segmenter option) is a field of SegmenterConfig only;
    the eval scripts, the demo and the GRPO arguments inherit it."""
    sources = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "eval").glob("*.py"),
        ROOT / "demo" / "seg_r1_web_demo.py",
    ]
    declarations = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.AnnAssign)
                and getattr(node.target, "id", "") == "sam2_checkpoint"
            ):
                declarations.append(path.name)
            if isinstance(node, ast.Call) and any(
                isinstance(a, ast.Constant) and a.value == "--sam2_checkpoint" for a in node.args
            ):
                declarations.append(path.name)
    assert declarations == ["config.py"], declarations
