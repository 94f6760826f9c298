"""Default flags from rc files, so a team sets `--jobs` or `--disk_cache` once.

Two files at the workspace root are read, in this order (later wins, and the
command line wins over both):

* `.bazelrc`: only `build` and `common` lines, and of those only the flags
  strata also has (`--jobs`, `--keep_going`, `--disk_cache`,
  `--verbose_failures`, `--output_groups`); everything else belongs to Bazel
  and is skipped.
* `.strata.rc`: same syntax (`<command> --flag ...`, `#` comments), every
  line applies, and an unknown flag is an error naming file and line.

`build` lines also apply to `run` and `test`, as in Bazel. `build:<config>` lines need
`--config`, which strata does not have, so they are ignored.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from strata.engine.loading.build_settings import is_setting_flag
from strata.engine.redact import redact_text
from strata.errors import UsageError


@dataclass(frozen=True)
class FlagSpec:
    takes_value: bool
    commands: frozenset[str]


_BUILDISH = frozenset({"build", "run", "test"})
_TEST = frozenset({"test"})

FLAGS: Mapping[str, FlagSpec] = {
    "jobs": FlagSpec(True, _BUILDISH),
    "keep_going": FlagSpec(False, _BUILDISH),
    "disk_cache": FlagSpec(True, _BUILDISH),
    "verbose_failures": FlagSpec(False, _BUILDISH),
    "explain": FlagSpec(False, _BUILDISH),
    "remote_cache": FlagSpec(True, _BUILDISH),
    "remote_upload_local_results": FlagSpec(False, _BUILDISH),
    "remote_accept_cached": FlagSpec(False, _BUILDISH),
    "remote_timeout": FlagSpec(True, _BUILDISH),
    "remote_header": FlagSpec(True, _BUILDISH),
    "remote_max_connections": FlagSpec(True, _BUILDISH),
    "action_keys": FlagSpec(True, _BUILDISH),
    "sandbox": FlagSpec(True, _BUILDISH),
    "output_groups": FlagSpec(True, _BUILDISH),
    "test_output": FlagSpec(True, _TEST),
    "test_filter": FlagSpec(True, _TEST),
    "test_env": FlagSpec(True, _TEST),
    "test_arg": FlagSpec(True, _TEST),
    "test_timeout": FlagSpec(True, _TEST),
    "cache_test_results": FlagSpec(True, _TEST),
}
"""Flags an rc file may set; `output_base` is a startup option and stays on the command line."""

# Remote-cache flags are not taken from .bazelrc: it often names a grpc:// cache,
# which strata cannot speak; teams put the HTTP cache in .strata.rc.
_BAZEL_SHARED = frozenset(
    {"jobs", "keep_going", "disk_cache", "verbose_failures", "output_groups"}
    | {"test_output", "test_env", "test_arg", "test_timeout", "cache_test_results"}
)
_TRISTATE = frozenset({"cache_test_results"})
"""Flags taking yes, no or auto, that alone mean yes and negated no."""


def _applies(rc_command: str, command: str) -> bool:
    if rc_command == "common":
        return True
    if rc_command == "build":
        return command in _BUILDISH
    return rc_command == command


def _parse_flags(
    tokens: list[str], where: str, command: str, *, strict: bool, settings: bool = False
) -> list[str]:
    """Normalise `--flag value`, `--flag=value`, `--noflag` to tokens argparse accepts;
    build-setting flags (`--//pkg:flag=v`) pass as written when `settings`; flags
    `command` does not have (a `common` line's `--jobs` for `query`) are left out."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if settings and is_setting_flag(tok):
            out.append(tok)
            continue
        name, eq, value = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
        negated = name.startswith("no") and name[2:] in FLAGS and name not in FLAGS
        base = name[2:] if negated else name
        spec = FLAGS.get(base)
        known = spec is not None and (strict or base in _BAZEL_SHARED)
        if spec is None or not known:
            if strict:
                shown = redact_text(tok)
                raise UsageError(f"{shown} :: Unrecognized option: {shown}", where=where)
            if not eq and i < len(tokens) and not tokens[i].startswith("-"):
                i += 1  # Bazel flag with a separate value; skip the value too.
            continue
        if command not in spec.commands:
            if spec.takes_value and not eq and i < len(tokens):
                i += 1
            continue
        if base in _TRISTATE and (negated or not eq):
            out.append(f"--{base}={'no' if negated else 'yes'}")
        elif spec.takes_value:
            if not eq:
                if i >= len(tokens):
                    raise UsageError(f"Expected value after {tok}", where=where)
                value = tokens[i]
                i += 1
            out.append(f"--{base}={value}")
        else:
            on = not negated and value.lower() not in ("false", "0", "no")
            out.append(f"--{base}" if on else f"--no{base}")
    return out


def read_rc(path: Path, command: str, *, strict: bool) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise UsageError(
                f"cannot split line ({e}) (got {redact_text(line)!r}); fix the quoting",
                where=where,
            ) from None
        if not tokens or ":" in tokens[0] or tokens[0] in ("import", "try-import", "startup"):
            continue
        if not _applies(tokens[0], command):
            continue
        settings = command in _BUILDISH
        out.extend(_parse_flags(tokens[1:], where, command, strict=strict, settings=settings))
    return out


def rc_args(workspace: Path, command: str) -> list[str]:
    """Flags for `command` from `.bazelrc` then `.strata.rc`, to put before the command line's."""
    return read_rc(workspace / ".bazelrc", command, strict=False) + read_rc(
        workspace / ".strata.rc", command, strict=True
    )
