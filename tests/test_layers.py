"""The package's import rules, checked on the source: imports point down the layers, and no
module imports a private (``_``-prefixed) name or module from another module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medden"

#: layer of each top-level subpackage (see medden/__init__.py); a module may import only from
#: its own layer or lower ones
LAYERS = {
    "core": 1,
    "io": 2, "transforms": 2, "losses": 2, "networks": 2, "metrics": 2, "data": 2, "anchors": 2,
    "engines": 3, "inference": 3,
    "bundle": 4,
    "apps": 5,
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every medden import in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "medden":
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.split(".")[0] == "medden"]
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS), "add the new subpackage to LAYERS and to medden/__init__.py's layer list"
    assert not [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"], "modules belong in a subpackage"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_down_and_take_no_private_names(path):
    here = _module_name(path)
    own = _layer(here)
    for line, module, names in _imports(path):
        where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        target = _layer(module)
        if own is not None and target is not None:
            assert target <= own, f"{where}: layer {target} above this module's layer {own}"
        assert not any(part.startswith("_") and not part.startswith("__") for part in module.split(".")), \
            f"{where}: a private module"
        if module != here:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{where}: private names {private}"


def _callers() -> list[Path]:
    root = PACKAGE.parent
    return sorted([*root.glob("scripts/*.py"), *(p for p in root.glob("tests/**/*.py") if "__pycache__" not in p.parts)])


@pytest.mark.parametrize("path", _callers(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_scripts_and_tests_take_no_private_names_from_other_modules(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            hidden = [part for part in node.module.split(".") if part.startswith("_") and not part.startswith("__")]
            assert not private and not hidden, f"{path.name}:{node.lineno} imports {node.module} {private}"


def test_the_rule_catches_an_upward_and_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from medden.apps.cli import main\nfrom medden.io.files import _hidden\n")
    assert [(module, names) for _, module, names in _imports(bad)] == [
        ("medden.apps.cli", ["main"]), ("medden.io.files", ["_hidden"])]
    assert _layer("medden.apps.cli") > _layer("medden.io.files")
