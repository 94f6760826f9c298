"""What an image's SBOM says, independent of the format it is written in.

An image is a root package (`pkg:oci/...` with its manifest digest), one
package per store path (name and version split as Nix's
`builtins.parseDrvName` splits them, the NAR sha256 as checksum, references as
dependency edges), one package per base image, and the regular files of the
image's own top layers (customisation, run_as_root) with their sha256.

Everything a document holds is derived from these facts, never from a clock
or a random source: `created` is the image's, and the document's namespace
and serial number hash the manifest digest, so two builds give the same bytes.

Spec of the name split: Nix's `src/libexpr/names.cc` (`DrvName::DrvName`):
the version starts after the first `-` whose next character is not a letter.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from strata.store import base32


def parse_drv_name(name: str) -> tuple[str, str]:
    """(name, version) as `builtins.parseDrvName` gives them; version "" when there is none."""
    for i, c in enumerate(name):
        if c == "-" and i + 1 < len(name) and not _is_alpha(name[i + 1]):
            return name[:i], name[i + 1 :]
    return name, ""


def _is_alpha(c: str) -> bool:
    # C's isalpha in the "C" locale, which Nix runs in: ASCII letters only.
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def nar_sha256_hex(nar_hash: str) -> str:
    """The hex sha256 of a NAR hash as store paths record it (`sha256:<nix-base32 or hex>`)."""
    algo, _, text = nar_hash.partition(":")
    if algo != "sha256":
        raise ValueError(f"not a sha256 NAR hash: {nar_hash!r}")
    if len(text) == 64:
        bytes.fromhex(text)
        return text.lower()
    return base32.decode(text, 32).hex()


@dataclass(frozen=True)
class StorePathPackage:
    path: str
    """The full store path, `<store_dir>/<hash>-<name>`."""
    references: tuple[str, ...]
    """Other store paths it references (sorted, without itself)."""
    nar_sha256: str
    """Hex sha256 of its NAR serialisation."""
    nar_size: int
    deriver: str = ""

    @property
    def hash_part(self) -> str:
        return self.path.rsplit("/", 1)[1].partition("-")[0]

    @property
    def full_name(self) -> str:
        return self.path.rsplit("/", 1)[1].partition("-")[2]

    @property
    def name(self) -> str:
        return parse_drv_name(self.full_name)[0]

    @property
    def version(self) -> str:
        return parse_drv_name(self.full_name)[1]


@dataclass(frozen=True)
class BaseSbom:
    """An SBOM a base image carries as an OCI 1.1 referrer."""

    artifact_type: str
    """`application/spdx+json` or `application/vnd.cyclonedx+json`."""
    digest: str
    """The document's digest, `sha256:<hex>` (the referrer's layer)."""
    uri: str
    """How the document names itself: SPDX `documentNamespace`, CycloneDX BOM-Link
    (`urn:cdx:<serial>/<version>`); "" when it does not."""

    @property
    def hex(self) -> str:
        return self.digest.partition(":")[2]


@dataclass(frozen=True)
class BaseImage:
    name: str
    """Repository name the base came with (`registry/repo`, or as its layout names it)."""
    digest: str
    """Its manifest digest, `sha256:<hex>`."""
    sboms: tuple[BaseSbom, ...] = ()
    """The SBOMs it carries as referrers, sorted by digest."""


@dataclass(frozen=True)
class LayerFile:
    path: str
    """Absolute path in the image."""
    sha256: str
    sha1: str
    size: int
    layer: str
    """Which of the image's own layers placed it: "customisation" or "run_as_root"."""


@dataclass(frozen=True)
class ImageFacts:
    name: str
    manifest_digest: str
    created: str
    """The image config's `created`, as `YYYY-MM-DDThh:mm:ssZ`."""
    store_paths: tuple[StorePathPackage, ...]
    roots: tuple[str, ...]
    """Store paths the image names directly (its contents); the rest are their closure."""
    bases: tuple[BaseImage, ...] = ()
    files: tuple[LayerFile, ...] = ()

    @property
    def digest_hex(self) -> str:
        return self.manifest_digest.partition(":")[2]

    def derived_uuid(self, kind: str) -> uuid.UUID:
        """A UUID fixed by the image digest and the document kind (no clock, no randomness)."""
        data = hashlib.sha256(f"strata-sbom:{kind}:{self.manifest_digest}".encode()).digest()
        return uuid.UUID(bytes=data[:16], version=5)


def oci_purl(name: str, digest: str) -> str:
    """The package URL of an OCI image (purl-spec, type `oci`): last path component as
    the name, the digest as the version, the whole repository name as `repository_url`."""
    last = name.rsplit("/", 1)[-1].lower()
    purl = f"pkg:oci/{quote(last, safe='')}@{quote(digest, safe='')}"
    if name:
        purl += "?repository_url=" + quote(name.lower(), safe="/:")
    return purl
