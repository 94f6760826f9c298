"""Configurations: the one target configuration and the host and exec ones Bazel adds.

strata analyses one configured target at a time (dependencies first), and every
hook names the configured target it is called for, so the current
configuration is a small mutable record that `enter` switches.
"""

from __future__ import annotations

from strata.engine.loading.labels import Label
from strata.engine.outputbase import host_cpu

TARGET, HOST, EXEC = "target", "host", "exec"
"""Configurations, as Bazel 4.2.3 builds them with default flags: the requested
targets in the target configuration; `cfg = "host"` dependencies and genrule
`tools` in the host configuration (`bazel-out/host/bin`); `cfg = "exec"`
dependencies and genrule `exec_tools` in the exec configuration (the output
directory name Bazel 4.2.3 derives for it). A dependency of a host or exec target
stays in that configuration."""


def config_key(label: str, config: str) -> str:
    """The key of a configured target: its label, with ` (host)` / ` (exec)` unless target."""
    return label if config == TARGET else f"{label} ({config})"


def split_key(key: str) -> tuple[str, str]:
    """(label, configuration) of a configured-target key."""
    for config in (HOST, EXEC):
        if key.endswith(f" ({config})"):
            return key[: -len(config) - 3], config
    return key, TARGET


class Configuration:
    """The current configuration and the output directory of each."""

    def __init__(self) -> None:
        self.cpu = host_cpu()
        self.bin_dirs = {
            TARGET: f"bazel-out/{self.cpu}-fastbuild/bin",
            HOST: "bazel-out/host/bin",
            EXEC: f"bazel-out/{self.cpu}-opt-exec-2B5CBBC6/bin",
        }
        self.target_bin_dir = self.bin_dirs[TARGET]
        self.config = TARGET
        """The configuration of the target being analysed (set by `enter`)."""
        self.bin_dir = self.target_bin_dir
        """`ctx.bin_dir.path` of that configuration."""

    def enter(self, key: str) -> Label:
        """Switch to the configuration of configured target `key`; return its label.

        Analysis runs one target at a time (dependencies first), and every hook
        names its target, so the current configuration is always the caller's.
        """
        label, self.config = split_key(key)
        self.bin_dir = self.bin_dirs[self.config]
        return Label.parse(label)

    def key(self, label: Label | str, config: str | None = None) -> str:
        """Key of `label` configured as `config` (default: the current configuration)."""
        return config_key(str(label), self.config if config is None else config)
