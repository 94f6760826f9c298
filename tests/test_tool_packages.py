"""Every program a test runs comes from a package tools/test installs.

A test whose tool is missing skips on a developer's machine and fails under CI,
so a tool that happens to be installed here but is in no list passes locally and
breaks a fresh machine (podman once did). On a fresh Debian machine there is
only what tools/test installs: the packages of tools/debian-packages.txt with
the packages they depend on, the base system (Essential and Priority: required
packages), and the dev lock's wheels in its virtual environment.

The programs are found in the tests' source: every `need("x")`, and the first
word of `run(...)` (realtools') and `subprocess.*(...)` when it is a literal.
Each is mapped to its Debian package with `dpkg-query -S`.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from realtools import unavailable

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PACKAGES = ROOT / "tools" / "debian-packages.txt"
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
# What the README asks of a fresh machine before tools/test runs.
PRECONDITIONS = {"python3": "README: a Debian machine with Python 3.11"}
_SUBPROCESS = {"run", "Popen", "check_output", "check_call", "call"}
_BIN_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")


def _first_word(arg: ast.expr) -> str | None:
    """The program of an argv: a literal string, or a list (maybe `[...] + rest`) of them."""
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        arg = arg.left
    if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts:
        arg = arg.elts[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def programs_tests_run(tests: Path = TESTS) -> dict[str, list[str]]:
    """Program name → where a test names it (`file:line`)."""
    found: dict[str, list[str]] = {}
    for path in sorted(tests.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        realtools_run = any(
            isinstance(n, ast.ImportFrom)
            and n.module == "realtools"
            and any(a.name == "run" for a in n.names)
            for n in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            if isinstance(f, ast.Name):
                counts = f.id == "need" or (f.id == "run" and realtools_run)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                counts = f.value.id == "subprocess" and f.attr in _SUBPROCESS
            else:
                counts = False
            word = _first_word(node.args[0]) if counts else None
            if word:
                found.setdefault(word, []).append(f"{path.name}:{node.lineno}")
    return found


def listed_packages(path: Path = PACKAGES) -> list[str]:
    """tools/debian-packages.txt: one package a line, `#` comments (as tools/test reads it)."""
    out = []
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            out.append(words[0])
    return out


@dataclass(frozen=True)
class Installed:
    """What dpkg says is installed: dependencies, provided names, the base system."""

    depends: dict[str, list[list[str]]]
    providers: dict[str, set[str]]
    base: set[str]


def _alternatives(field: str) -> list[list[str]]:
    """`a (>= 1) | b, c:any [amd64]` → [["a", "b"], ["c"]]."""
    groups = []
    for group in filter(None, (g.strip() for g in field.split(","))):
        names = [re.split(r"[\s(:\[<]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        groups.append([n for n in names if n])
    return groups


def installed_packages() -> Installed:
    fields = ("Package", "Status", "Essential", "Priority", "Provides", "Pre-Depends")
    fmt = "\t".join(f"${{{f}}}" for f in fields) + ", ${Depends}\n"
    out = subprocess.run(
        ["dpkg-query", "-W", f"-f={fmt}"], capture_output=True, text=True, check=True
    ).stdout
    depends: dict[str, list[list[str]]] = {}
    providers: dict[str, set[str]] = {}
    base: set[str] = set()
    for line in out.splitlines():
        name, status, essential, priority, provides, deps = line.split("\t")
        if not status.endswith(" installed"):
            continue
        depends.setdefault(name, []).extend(_alternatives(deps))
        providers.setdefault(name, set()).add(name)
        for provided in _alternatives(provides):
            providers.setdefault(provided[0], set()).add(name)
        if essential == "yes" or priority == "required":
            base.add(name)
    return Installed(depends, providers, base)


def installed_by_tools_test(listed: list[str], installed: Installed) -> set[str]:
    """The listed packages, the base system and every package they depend on (an
    alternative `a | b` by whichever of them is installed): what tools/test brings."""
    seen: set[str] = set()
    todo = [*listed, *installed.base]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for group in installed.depends.get(name, []):
            for alt in group:
                todo.extend(installed.providers.get(alt, ()))
    return seen


def dpkg_owners(program: str) -> set[str]:
    """The installed packages that ship `program` in a bin directory (or at its path), or
    the file it resolves to (`fakeroot` is an alternatives link to `fakeroot-sysv`)."""
    paths = [program] if program.startswith("/") else [f"{d}/{program}" for d in _BIN_DIRS]
    for path in list(paths):
        real = os.path.realpath(path)
        if real != path and os.path.isfile(real):
            paths.append(real)
    proc = subprocess.run(["dpkg-query", "-S", *paths], capture_output=True, text=True)
    owners = set()
    for line in proc.stdout.splitlines():
        if line.startswith("diversion by ") or ": " not in line:
            continue
        for package in line.split(": ", 1)[0].split(","):
            owners.add(package.strip().split(":")[0])
    return owners


def _lock_names() -> set[str]:
    names = set()
    for lock in LOCKS:
        for line in lock.read_text().splitlines():
            m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
            if m:
                names.add(re.sub(r"[-_.]+", "-", m.group(1)).lower())
    return names


def _wheel_of(program: str) -> str | None:
    """The distribution in this virtual environment that installed `program`, if any."""
    for dist in metadata.distributions():
        for f in dist.files or ():
            if f.name == program and f.parent.name == "bin":
                return re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    return None


def problems(programs: dict[str, list[str]], listed: list[str]) -> tuple[list[str], list[str]]:
    """(programs from no package tools/test installs, programs not installed here)."""
    installed = installed_packages()
    brought = installed_by_tools_test(listed, installed)
    locked = _lock_names()
    wrong, missing = [], []
    for program, where in sorted(programs.items()):
        if program in PRECONDITIONS:
            continue
        owners = dpkg_owners(program)
        if owners & brought:
            continue
        wheel = _wheel_of(program)
        if wheel in locked:
            continue
        places = ", ".join(where[:3])
        if owners:
            wrong.append(
                f"{program} ({places}) comes from {', '.join(sorted(owners))}, which "
                f"tools/test does not install: add it to {PACKAGES.relative_to(ROOT)}"
            )
        elif shutil.which(program) or shutil.which(program, path=":".join(_BIN_DIRS)):
            wrong.append(
                f"{program} ({places}) is installed here outside any Debian package: add the "
                f"package that has it to {PACKAGES.relative_to(ROOT)}"
            )
        else:
            missing.append(f"{program} ({places})")
    return wrong, missing


def _need_dpkg() -> None:
    if shutil.which("dpkg-query") is None:
        unavailable("dpkg-query is not installed: tools/test supports Debian only")


def test_every_program_tests_run_comes_from_a_package_tools_test_installs() -> None:
    _need_dpkg()
    programs = programs_tests_run()
    # The scan sees what it must: need() calls, realtools' run, subprocess with a literal.
    assert {"skopeo", "podman", "runc", "git", "docker-registry", "tar"} <= set(programs)
    wrong, missing = problems(programs, listed_packages())
    assert not wrong, "\n".join(wrong)
    if missing:
        unavailable("not installed, so its package is unknown: " + "; ".join(missing))


def test_a_program_whose_package_is_not_listed_is_reported() -> None:
    """The check fails for the gap it is for: podman used by a test, not in the list."""
    _need_dpkg()
    if not dpkg_owners("podman"):
        unavailable("podman is not installed; run tools/test as root to install it")
    listed = [p for p in listed_packages() if p != "podman"]
    wrong, _missing = problems({"podman": ["test_x.py:1"]}, listed)
    assert wrong == [
        "podman (test_x.py:1) comes from podman, which tools/test does not install: add it "
        "to tools/debian-packages.txt"
    ]
    assert problems({"podman": ["test_x.py:1"]}, listed_packages()) == ([], [])


def test_the_scan_reads_literal_program_names_only(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "import subprocess\n"
        "from realtools import need, run\n"
        "need('umoci')\n"
        "run('skopeo', 'inspect')\n"
        "subprocess.run(['git', 'ls-files'] + more)\n"
        "subprocess.run(program)\n"
        "need(name)\n"
    )
    (tmp_path / "test_b.py").write_text("def run(*a): pass\nrun('build', '//x')\n")
    assert programs_tests_run(tmp_path) == {
        "umoci": ["test_a.py:3"],
        "skopeo": ["test_a.py:4"],
        "git": ["test_a.py:5"],
    }
