"""The actions package keeps its contract: one module per mnemonic, no action importing another.

Every action module is named after its mnemonic (`LayerGroups`: `layer_groups.py`)
and imports only the library and the modules that read requests. A helper one
action needs and another action also wants belongs in one of those, so that
each action can be read, and changed, on its own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from strata.actions import ACTIONS

ACTIONS_DIR = Path(__file__).resolve().parent.parent / "python" / "strata" / "actions"
SHARED = {"request", "image_request", "registry_request", "store_request"}
"""Modules that read requests: what actions share."""


def _snake(mnemonic: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", mnemonic).lower()


def _imported_actions_modules(path: Path) -> set[str]:
    """The `strata.actions.<m>` modules `path` imports (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "strata.actions":
                found |= {a.name for a in node.names}
            elif node.module.startswith("strata.actions."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[2] for a in node.names if a.name.startswith("strata.actions.")
            }
    return found


def test_each_action_module_is_named_after_its_mnemonic() -> None:
    wrong = {
        mnemonic: target
        for mnemonic, target in ACTIONS.items()
        if target.split(":")[0] != f"strata.actions.{_snake(mnemonic)}"
    }
    assert wrong == {}


def test_every_module_is_an_action_or_shared() -> None:
    actions = {target.split(":")[0].rsplit(".", 1)[1] for target in ACTIONS.values()}
    modules = {p.stem for p in ACTIONS_DIR.glob("*.py")} - {"__init__"}
    assert modules - actions == SHARED
    assert actions <= modules


def test_no_action_imports_another() -> None:
    actions = {target.split(":")[0].rsplit(".", 1)[1] for target in ACTIONS.values()}
    offenders = {
        p.stem: sorted(imported)
        for p in sorted(ACTIONS_DIR.glob("*.py"))
        if p.stem != "__init__" and (imported := _imported_actions_modules(p) - SHARED)
    }
    assert offenders == {}
    # the shared modules read requests; they do not run actions either
    assert all(not (_imported_actions_modules(ACTIONS_DIR / f"{m}.py") & actions) for m in SHARED)


def test_the_check_sees_an_action_importing_another(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "from strata.actions.request import field\n"
        "def f():\n    from strata.actions.image_pull import run\n"
        "from strata.actions import layer_groups\n"
    )
    assert _imported_actions_modules(module) - SHARED == {"image_pull", "layer_groups"}
