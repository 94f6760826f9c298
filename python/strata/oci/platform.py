"""Platforms in the terms image configs and indexes use: GOOS/GOARCH plus variant.

People name machines the way `uname -m` or Nix do (`x86_64`, `aarch64`,
`armv7l`); the OCI image spec's config and index `platform` fields use Go's
GOARCH values and a separate variant (`arm` + `v7`). A wrong architecture makes
runtimes refuse the image or, worse, pick the wrong one out of an index, so
unknown names are an error rather than passed through.

Spec: https://github.com/opencontainers/image-spec/blob/main/config.md#properties
and https://go.dev/doc/install/source#environment (GOARCH values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strata.errors import UserError

# name -> (GOARCH, variant). GOARCH names map to themselves so either spelling works.
_ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "x64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armhf": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armel": ("arm", "v5"),
    "arm": ("arm", "v7"),
    "i686": ("386", ""),
    "i586": ("386", ""),
    "i486": ("386", ""),
    "i386": ("386", ""),
    "386": ("386", ""),
    "x86": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "powerpc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "powerpc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64el": ("mips64le", ""),
    "mips64le": ("mips64le", ""),
    "mipsel": ("mipsle", ""),
    "mipsle": ("mipsle", ""),
    "mips": ("mips", ""),
    "mips64": ("mips64", ""),
    "loongarch64": ("loong64", ""),
    "loong64": ("loong64", ""),
    "wasm32": ("wasm", ""),
    "wasm": ("wasm", ""),
}

_OSES = ("linux", "windows", "freebsd", "darwin", "wasip1")


@dataclass(frozen=True)
class Platform:
    """An image platform: `architecture` and `os` as GOARCH/GOOS, `variant` may be ""."""

    architecture: str
    os: str = "linux"
    variant: str = ""

    def to_json(self) -> dict[str, str]:
        """The `platform` object of an OCI index entry (variant only when set)."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @staticmethod
    def from_json(obj: Any) -> Platform:
        """The platform an index entry or config names; "" for what it does not say (an
        entry from outside may hold anything, and anything but an object says nothing)."""
        if not isinstance(obj, dict):
            return Platform("", "", "")
        return Platform(
            architecture=str(obj.get("architecture", "")),
            os=str(obj.get("os", "")),
            variant=str(obj.get("variant", "") or ""),
        )

    def matches(self, other: Platform) -> bool:
        """True if `other` (from an index or config) satisfies this wanted platform.

        An unset variant on either side matches any variant: many indexes and
        configs leave it out (arm64 almost always).
        """
        if (self.architecture, self.os) != (other.architecture, other.os):
            return False
        return not self.variant or not other.variant or self.variant == other.variant

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def known_architectures() -> list[str]:
    return sorted(_ARCHES)


def parse_platform(architecture: str, os: str = "linux", *, where: str = "platform") -> Platform:
    """Map a machine name (`x86_64`, `armv7l`, `arm64`, ...) and an OS to a `Platform`.

    arm64's variant "v8" is implied by the name and is left out of configs
    (Docker and containerd omit it too); 32-bit arm keeps it because v6 and v7
    binaries differ.
    """
    key = architecture.strip().lower()
    if key not in _ARCHES:
        raise UserError(
            f"unknown architecture (got {architecture!r}); use one of: "
            + ", ".join(known_architectures()),
            where=where,
        )
    goarch, variant = _ARCHES[key]
    if goarch == "arm64":
        variant = ""
    goos = os.strip().lower()
    if goos not in _OSES:
        raise UserError(
            f"unknown os (got {os!r}); use one of: {', '.join(_OSES)}",
            where=where,
        )
    return Platform(architecture=goarch, os=goos, variant=variant)
