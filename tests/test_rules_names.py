"""Registry names are checked at analysis time and run scripts quote every value.

`rules/private/names.bzl` holds the reference-grammar checks and `shell_quote`;
the first tests evaluate it with starlark-pyo3 and compare its verdicts with
the Python side (`strata.oci.reference`, `Registry.parse`). The others build
and run hostile targets under strata and real Bazel 4.2.3: an attribute value
carrying shell syntax (newline and a command, `$(...)`, backticks, `;`,
quotes, spaces) is refused at analysis naming the attribute, and a label
carrying shell syntax (Bazel allows `$`, `(`, `` ` ``, `;` and quotes in target
names) reaches the generated script as an inert word; `pull_image` refuses a
bad repository before it pulls. Every hostile value would touch a canary
file outside the build; it must never appear.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import starlark as sl

from realtools import bazel
from strata.engine.loading.starlark_env import DIALECT, GLOBALS
from strata.errors import UserError
from strata.oci.reference import check_host, is_repository, is_tag
from strata.registry.endpoint import Registry

ROOT = Path(__file__).resolve().parent.parent
NAMES_BZL = ROOT / "rules" / "private" / "names.bzl"


def starlark_names(expression: str) -> object:
    """Evaluate `expression` after rules/private/names.bzl; JSON-decoded."""
    src = NAMES_BZL.read_text() + f"\njson.encode({expression})\n"
    return json.loads(sl.eval(sl.Module(), sl.parse("names.bzl", src, DIALECT), GLOBALS, None))


def verdicts(function: str, values: list[str]) -> list[bool]:
    """True where the Starlark check accepts the value."""
    out = starlark_names(f"[{function}(v) == '' for v in {json.dumps(values)}]")
    assert isinstance(out, list)
    return [bool(v) for v in out]


HOSTILE = [
    "team/app\ntouch /tmp/canary",
    "team/$(touch /tmp/canary)",
    "team/`touch /tmp/canary`",
    "team/app;touch /tmp/canary",
    "team/app'\"",
    "team/app touch",
    "",
]
REPOSITORIES = [
    *HOSTILE,
    "team/app",
    "library/busybox",
    "a",
    "a.b_c__d---e/f0",
    "a..b",
    "a___b",
    "a._b",
    "-a",
    "a-",
    "a//b",
    "/a",
    "a/",
    "Team/app",
    "tëam/app",
    "a" * 255,
    "a" * 256,
]
TAGS = [
    *HOSTILE,
    "1.0",
    "latest",
    "V1_2-rc.3",
    "_x",
    ".x",
    "-x",
    "x" * 128,
    "x" * 129,
    "tág",
    "a:b",
]
HOSTS = [
    *HOSTILE,
    "registry.example.com",
    "registry.example.com:5000",
    "Registry.Example.COM",
    "127.0.0.1:5000",
    "localhost",
    "[::1]",
    "[::1]:5000",
    "[fe80::1:2]",
    "[::1",
    "::1",
    "h:99999",
    "h:65535",
    "h:0",
    "h:",
    "h:50a",
    "-h.example",
    "h-.example",
    "a..b",
    "a.b.",
    "host/path",
    "user@host",
]


def test_repository_and_tag_checks_agree_with_python() -> None:
    assert verdicts("repository_error", REPOSITORIES) == [is_repository(v) for v in REPOSITORIES]
    assert verdicts("tag_error", TAGS) == [is_tag(v) for v in TAGS]


def _python_host_ok(value: str) -> bool:
    try:
        check_host(value, "t")
        return True
    except UserError:
        return False


def test_registry_check_agrees_with_python() -> None:
    assert verdicts("registry_error", HOSTS) == [_python_host_ok(v) for v in HOSTS]
    good = ["registry.example.com:5000", "[::1]:5000", "localhost"]
    assert verdicts("registry_error", good) == [True] * 3
    # A scheme in front is allowed (plain-HTTP registries), once, and parses in Python too.
    schemes = ["http://127.0.0.1:5000", "https://h", "HTTP://h", "http://https://h", "ftp://h"]
    assert verdicts("registry_error", schemes) == [True, True, True, False, False]
    for value in schemes[:3]:
        Registry.parse(value)
    for value in [*HOSTILE, "h:99999", "[::1", "http://h:0"]:
        with pytest.raises(UserError, match=r"invalid registry address \(got "):
            Registry.parse(value)


def test_reference_check_takes_a_tag_or_a_name_with_tag() -> None:
    ok = ["latest", "V1", "team/app", "team/app:1.0", "reg.example.com:5000/team/app:1", "app"]
    bad = [*HOSTILE, "Team/App:1", "app:", "app:-x", "reg:99999/app", ":1", "a b"]
    assert verdicts("_reference_or_tag_error", ok) == [True] * len(ok)
    assert verdicts("_reference_or_tag_error", bad) == [False] * len(bad)


def test_name_problem_is_one_line_with_the_value_and_the_fix() -> None:
    problem = starlark_names('name_problem("repository", "team/app\\ntouch /tmp/canary")')
    assert isinstance(problem, str) and "\n" not in problem
    assert problem.startswith('invalid repository (got "team/app\\ntouch /tmp/canary"); use lower')
    assert starlark_names('name_problem("tag", "1.0")') == ""


@pytest.mark.parametrize("value", [*HOSTILE, "it's", "'", "''", "\\", "$HOME", "!", "a\tb", "*"])
def test_shell_quote_makes_any_value_one_inert_word(value: str, tmp_path: Path) -> None:
    quoted = starlark_names(f"shell_quote({json.dumps(value)})")
    assert isinstance(quoted, str)
    canary = tmp_path / "canary"
    word = quoted.replace("/tmp/canary", str(canary))
    out = subprocess.run(
        ["/bin/sh", "-c", f"printf '%s' {word}"], capture_output=True, text=True, check=True
    )
    assert out.stdout == value.replace("/tmp/canary", str(canary))
    assert not canary.exists()


# -- under both engines --------------------------------------------------------------------

# Attribute values that must be refused at analysis; each would touch $CANARY if it ran.
ATTACKS = {
    "newline": "team/app\\ntouch {canary}",
    "subst": "team/$(touch {canary})",
    "backticks": "team/`touch {canary}`",
    "semicolon": "team/app;touch {canary}",
    "quotes": "team/app'\\\"; touch {canary}; '",
    "spaces": "team/app touch {canary}",
}
# (target prefix, attribute, attributes with VALUE, message start)
R = 'registry = "127.0.0.1:1", repository = "a"'
ATTACKED = [
    ("push_repository", "repository", 'registry = "h", repository = "VALUE"', "invalid repository"),
    ("push_registry", "registry", 'registry = "VALUE", repository = "a"', "invalid registry host"),
    ("push_tag", "tags_to_push", f'{R}, tags = ["1.0", "VALUE"]', "invalid tag (got "),
    ("push_mount_from", "mount_from", f'{R}, mount_from = "VALUE"', "invalid repository (got "),
    ("load_ref", "ref", 'ref = "VALUE"', "invalid"),
]
# pull_image checks its names before it runs anything (no pull is tried).
PULL_ATTACK = "library/busybox\\n$(touch $CANARY)"
PULL_ERROR = "@bad_pull: attribute 'repository': invalid repository (got "
PUSH = 'image_push(name = "{name}", image = "img.tar", {attrs})\n'
LOAD = 'image_load(name = "{name}", image = "img.tar", {attrs})\n'

# Target names with shell syntax (allowed in labels by both engines); the generated
# scripts print the label (image_load, on a bad loader) or run a file named after it
# (image_push's request), so an unquoted label would run `touch $CANARY`.
HOSTILE_NAMES = {
    "load_subst": ("load", "load$(touch${IFS}$CANARY)"),
    "load_backticks": ("load", "load`touch${IFS}$CANARY`"),
    "load_semicolon": ("load", "load;touch${IFS}$CANARY;"),
    "load_double_quote": ("load", 'load"$(touch${IFS}$CANARY)"'),
    "load_single_quote": ("load", "load'$(touch${IFS}$CANARY)'"),
    "push_subst": ("push", "push$(touch${IFS}$CANARY)"),
    "push_backticks": ("push", "push`touch${IFS}$CANARY`;x"),
}


def _attack_targets(canary: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """The `attacks` package and {target: (attribute, message start)}."""
    build = ['load("@strata//rules:defs.bzl", "image_load", "image_push")\n']
    expected = {}
    for prefix, attribute, attrs, message in ATTACKED:
        template = LOAD if prefix.startswith("load") else PUSH
        for case, value in ATTACKS.items():
            name = f"{prefix}_{case}"
            text = attrs.replace("VALUE", value.format(canary=canary))
            build.append(template.format(name=name, attrs=text))
            expected[name] = (attribute, message)
    return "".join(build), expected


def _starlark_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoting_targets() -> str:
    build = ['load("@strata//rules:defs.bzl", "image_load", "image_push")\n']
    for kind, name in HOSTILE_NAMES.values():
        if kind == "load":
            build.append(f'image_load(name = {_starlark_str(name)}, image = "img.tar")\n')
        else:
            build.append(
                f'image_push(name = {_starlark_str(name)}, image = "img.tar", '
                'registry = "127.0.0.1:1", repository = "team/app")\n'
            )
    return "".join(build)


def workspace(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[str, str]]]:
    """A workspace with the `attacks` and `quoting` packages; returns (ws, canary, expected)."""
    canary = tmp_path / "canary-dir" / "canary"
    canary.parent.mkdir(parents=True)
    ws = tmp_path / "ws"
    attacks, expected = _attack_targets(canary)
    for pkg, text in (("attacks", attacks), ("quoting", _quoting_targets())):
        (ws / pkg).mkdir(parents=True)
        (ws / pkg / "BUILD").write_text(text)
        # Not an image: the push fails reading it, before any network, after the script ran.
        (ws / pkg / "img.tar").write_text("not an image\n")
    (ws / "pulled").mkdir()
    (ws / "pulled" / "BUILD").write_text('filegroup(name = "base", srcs = ["@bad_pull"])\n')
    (ws / "WORKSPACE").write_text(
        f'local_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "pull_image", "strata_dependencies")\n'
        "strata_dependencies()\n"
        f'pull_image(name = "bad_pull", registry = "127.0.0.1:1", repository = "{PULL_ATTACK}",'
        ' digest = "sha256:' + "0" * 64 + '")\n'
    )
    return ws, canary, expected


def _env(canary: Path) -> dict[str, str]:
    return {**os.environ, "CANARY": str(canary), "STRATA_LOADER": "no-such-loader"}


def _line_with(out: str, *parts: str) -> str:
    found = [line for line in out.splitlines() if all(p in line for p in parts)]
    assert found, f"no line with {parts} in:\n{out[-3000:]}"
    return found[0]


def _check_scripts(bin_dir: Path, canary: Path, cwd: Path) -> None:
    """Run each quoting target's script as `bazel run` / `strata run` would."""
    for kind, name in HOSTILE_NAMES.values():
        script = bin_dir / "quoting" / name
        assert script.is_file(), script
        proc = subprocess.run([script], cwd=cwd, capture_output=True, text=True, env=_env(canary))
        _check_quoted_run(proc, kind, name, canary)


def _check_quoted_run(
    proc: subprocess.CompletedProcess[str], kind: str, name: str, canary: Path
) -> None:
    assert proc.returncode == 1, (name, proc.stderr)
    assert not canary.exists(), (name, proc.stderr)
    if kind == "load":  # the label printed as it is, not run
        _line_with(proc.stderr, f"error: //quoting:{name}: attribute 'loader'")
    else:  # the request file named after the label found, so the push got as far as the image
        _line_with(proc.stderr, "error: quoting/img.tar: base image is not a tar archive")


def _check_attacks(out: str, expected: dict[str, tuple[str, str]], prefix: str) -> None:
    for target, (attribute, message) in expected.items():
        line = _line_with(out, f"//attacks:{target}: attribute '{attribute}': {message}")
        assert line.startswith(prefix) or f"{prefix}//attacks:{target}" in line, line


@pytest.mark.realtool
@pytest.mark.slow
def test_hostile_names_under_strata(tmp_path: Path) -> None:
    ws, canary, expected = workspace(tmp_path)
    strata = [str(ROOT / "tools" / "strata")]
    base = f"--output_base={tmp_path / 'ob'}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*strata, *args[:1], base, *args[1:]],
            cwd=ws,
            capture_output=True,
            text=True,
            env=_env(canary),
        )

    attacks = run("build", "--keep_going", "//attacks:all")
    assert attacks.returncode == 1 and "Traceback" not in attacks.stderr
    _check_attacks(attacks.stderr, expected, "error: attacks/BUILD:")  # as Bazel places it
    assert "(got 30 analysis errors)" in attacks.stderr
    assert not (ws / "strata-bin" / "attacks").exists()
    refused = run("run", "//attacks:push_repository_newline")
    assert refused.returncode == 1
    _line_with(refused.stderr, "//attacks:push_repository_newline: attribute 'repository'")
    assert not canary.exists()

    pulled = run("build", "//pulled:base")
    assert pulled.returncode == 1
    _line_with(pulled.stderr, PULL_ERROR)
    assert "pulling" not in pulled.stderr and not canary.exists()

    built = run("build", "//quoting:all")
    assert built.returncode == 0, built.stderr
    _check_scripts(ws / "strata-bin", canary, tmp_path)
    for kind, name in (HOSTILE_NAMES["load_subst"], HOSTILE_NAMES["push_backticks"]):
        _check_quoted_run(run("run", f"//quoting:{name}"), kind, name, canary)


@pytest.mark.realtool
@pytest.mark.slow
def test_hostile_names_under_bazel(tmp_path: Path) -> None:
    ws, canary, expected = workspace(tmp_path)
    proc = bazel(
        ws,
        tmp_path / "root",
        "build",
        "--keep_going",
        "--spawn_strategy=processwrapper-sandbox",
        "//attacks:all",
        "//quoting:all",
        "//pulled:base",
        check=False,
        env=_env(canary),
    )
    assert proc.returncode != 0
    _check_attacks(proc.stderr, expected, "Error in fail: ")
    _line_with(proc.stderr, PULL_ERROR)
    assert not (ws / "bazel-bin" / "attacks").exists()
    assert not canary.exists()
    # The quoting targets built; their scripts run as `bazel run` runs them.
    _check_scripts(ws / "bazel-bin", canary, tmp_path)
