"""The action record: the contract between analysis and execution.

Analysis (loader, rule API) turns targets into `Action`s; the scheduler and
executor run them and the cache stores their results. Every path is relative
to the execroot, laid out as Bazel lays out its own so that command lines are
the same under both engines:

    <package>/<file>                        source files of the main repository
    external/<repo>/<package>/<file>        source files of other repositories
    bazel-out/<cpu>-fastbuild/bin/<pkg>/... generated files (ctx.bin_dir.path)

(`<cpu>` is `k8` on x86_64 and `aarch64` on arm64, as in Bazel.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import blake3

from strata.canonical import json_bytes

DEFAULT_PATH = "/bin:/usr/bin:/usr/local/bin"
"""The PATH Bazel gives an action that uses the default shell environment (genrule,
`use_default_shell_env`; `--incompatible_strict_action_env`'s value), a test (after `.`)
and, as strata's one default, a repository rule when the client environment has none.
An action that declares no PATH gets none: its shell, or execvp, falls back on
`os.defpath`."""


@dataclass(frozen=True)
class Action:
    owner: str
    """Label of the target that registered it, e.g. `//img:app`."""
    mnemonic: str
    progress_message: str
    kind: str = "run"
    """`run` (a process), `write` (file from `content`), `symlink`, or `template`."""
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """Sorted (name, value) pairs; the whole environment the process sees."""
    inputs: tuple[str, ...] = ()
    """Sorted execroot paths of files and tree artifacts the action may read (tools included)."""
    outputs: tuple[str, ...] = ()
    """Sorted execroot paths of the files it must produce."""
    output_dirs: tuple[str, ...] = ()
    """Sorted execroot paths of tree artifacts (ctx.actions.declare_directory)."""
    content: bytes = b""
    """For `write` and `template` (already expanded) actions."""
    is_executable: bool = False
    symlink_target: str = ""
    """For `symlink`: the execroot path it points to."""
    tags: tuple[str, ...] = field(default=())
    """The owner's tags that affect execution (`no-cache`, `no-remote-cache`, ...)."""

    @functools.cached_property
    def definition(self) -> str:
        """Digest of what defines the action but its inputs' contents (see execution/actionkey.py).

        Computed once and pickled with the analysis result it belongs to.
        """
        return definition_digest(self)


KEY_VERSION = 2
"""2: an action's environment is exactly its `env` (1 added PATH=/bin:/usr/bin when unset)."""


def definition_digest(action: Action) -> str:
    """Digest of everything in `action`'s key but its inputs' contents."""
    return blake3.blake3(
        json_bytes(
            {
                "v": KEY_VERSION,
                "record": 1,
                "kind": action.kind,
                "argv": list(action.argv),
                "env": {k: v for k, v in action.env},
                "inputs": list(action.inputs),
                "outputs": list(action.outputs),
                "output_dirs": list(action.output_dirs),
                "content": blake3.blake3(action.content).hexdigest() if action.content else "",
                "executable": action.is_executable,
                "symlink_target": action.symlink_target,
            }
        )
    ).hexdigest()
