"""Packaging: every sub-package is listed for installation and shipped grammars are importable."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"structgen." + ".".join(p.parent.relative_to(ROOT / "structgen").parts)
               for p in (ROOT / "structgen").rglob("__init__.py") if p.parent != ROOT / "structgen"}
    missing = on_disk - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_shipped_grammars_are_package_data():
    from structgen.grammar import list_shipped_grammars
    names = set(list_shipped_grammars())
    assert {"json.lark", "arithmetic.lark", "sql.lark", "python.lark", "csv.lark", "json.gbnf"} <= names
