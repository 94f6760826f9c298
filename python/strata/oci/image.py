"""An assembled image: config bytes plus layer blobs on disk, ready for a writer.

Image assembly is the one place where our layers, a base image's layers and
the user's config meet. It produces an `Image` whose every byte is decided
(config serialised canonically, layers in order, tag chosen) before any output
is written, so the docker-archive and OCI layout writers only copy bytes and
cannot disagree about digests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes
from strata.errors import UserError
from strata.oci.config import build_config, created_epoch, parse_created, validate_config
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import LayerRef, manifest_bytes
from strata.oci.platform import Platform
from strata.oci.reference import ImageRef, content_tag, parse_image_name, split_tag
from strata.oci.remote_blobs import Remote, missing_bytes_error

_JOIN_CHUNK = 8 << 20


@dataclass(frozen=True)
class Join:
    """A blob that is not a file of its own: byte ranges of other files, in order, then
    `trailer` zero bytes (a tar's end blocks). See strata.store.layer_recipe."""

    parts: tuple[tuple[Path, int, int], ...]
    """(file, start, end) each."""
    trailer: int

    @property
    def size(self) -> int:
        return sum(end - start for _, start, end in self.parts) + self.trailer

    def chunks(self) -> Iterator[bytes]:
        """The blob's bytes, a piece at a time; an error if a file is shorter than a range."""
        for path, start, end in self.parts:
            with open(path, "rb", buffering=0) as f:
                while start < end:
                    data = os.pread(f.fileno(), min(_JOIN_CHUNK, end - start), start)
                    if not data:
                        raise UserError(
                            "layer to join is shorter than its recipe says; rebuild it",
                            where=os.fspath(path),
                        )
                    yield data
                    start += len(data)
        if self.trailer:
            yield bytes(self.trailer)


@dataclass(frozen=True)
class Blob:
    """A layer blob in a file: its bytes are copied into outputs verbatim."""

    path: Path
    digest: str
    size: int
    diff_id: str
    compressor: str
    remote: Remote | None = None
    """Set for a shallow base's layer: `path` does not exist, the bytes are in this registry
    (oci/remote_blobs.py). Digests and media type come from the base's manifest."""
    join: Join | None = None
    """Set for a layer kept as a join recipe (at `path`): its bytes are these ranges."""

    @property
    def ref(self) -> LayerRef:
        return LayerRef(self.digest, self.size, self.diff_id, self.compressor)


def require_bytes(blobs: Sequence[Blob], where: str) -> None:
    """For outputs that hold layer bytes: one error if any of `blobs` is not on this machine."""
    missing = [(b.digest, b.remote) for b in blobs if b.remote is not None]
    if missing:
        raise missing_bytes_error(missing, where)


@dataclass(frozen=True)
class Image:
    """One image: serialised config, its layers in order, and its name (if any)."""

    config: bytes
    layers: tuple[Blob, ...]
    ref: ImageRef | None
    mtime: int = 1
    """The modification time for archive members that hold this image."""
    platform: Platform | None = None
    more_tags: tuple[ImageRef, ...] = ()
    """Further names for the same image (a merged archive keeps every RepoTag)."""

    @property
    def refs(self) -> tuple[ImageRef, ...]:
        return ((self.ref,) if self.ref else ()) + self.more_tags

    @property
    def config_digest(self) -> str:
        return sha256_bytes(self.config)

    def manifest(self, *, docker: bool) -> bytes:
        return manifest_bytes(
            self.config_digest, len(self.config), [b.ref for b in self.layers], docker=docker
        )

    def info(self) -> dict[str, Any]:
        """The image-info record other rules read: name, tag and every digest."""
        oci = self.manifest(docker=False)
        docker = self.manifest(docker=True)
        created = json.loads(self.config).get("created")
        return {
            "config_digest": self.config_digest,
            "created": created if isinstance(created, str) else "",
            "diff_ids": [b.diff_id for b in self.layers],
            "docker_manifest_digest": sha256_bytes(docker),
            "layers": [b.digest for b in self.layers],
            "manifest_digest": sha256_bytes(oci),
            "name": self.ref.name if self.ref else "",
            "tag": self.ref.tag if self.ref else "",
        }


@dataclass(frozen=True)
class BaseImage:
    """What we take from a base image: its parsed config and its verified layer blobs."""

    config: dict[str, Any]
    layers: tuple[Blob, ...]
    platform: Platform
    config_bytes: bytes = b""
    """The config exactly as stored (its sha256 is the image ID)."""
    repo_tags: tuple[str, ...] = ()
    """`name:tag`s a docker-archive gave the image."""


def stored_image(base: BaseImage) -> Image:
    """An image read back from a docker-archive or OCI layout, to be written out again as it is.

    Config bytes and layer blobs are kept, so the image ID and every digest stay;
    the names are the archive's RepoTags (a layout's `io.containerd.image.name`),
    and the members' mtime is the config's `created`, as `assemble` chose it. So
    the docker-archive of an image's OCI layout is the one its assembly would
    have written, byte for byte.
    """
    refs = []
    for tag in base.repo_tags:
        name, t = split_tag(tag)
        refs.append(ImageRef(name, t or "latest"))
    created = base.config.get("created")
    try:
        mtime = created_epoch(created) if isinstance(created, str) else 1
    except ValueError:
        mtime = 1
    return Image(
        base.config_bytes,
        base.layers,
        refs[0] if refs else None,
        mtime=mtime,
        platform=base.platform,
        more_tags=tuple(refs[1:]),
    )


@dataclass(frozen=True)
class Assembled:
    image: Image
    warnings: tuple[str, ...]


def assemble(
    *,
    layers: Sequence[Blob],
    fields: Any,
    platform: Platform,
    created: str | None = None,
    name: str | None = None,
    tag: str | None = None,
    base: BaseImage | None = None,
    where: str = "image",
) -> Assembled:
    """Put a config together over `base` (if any) and `layers`; choose the tag.

    The default tag is a content hash of the config, which names every layer
    by diff_id, so an image's tag changes exactly when its content does.
    """
    user_fields = validate_config(fields if fields is not None else {}, where)
    created_at, warnings = parse_created(created, where=where)
    all_layers = (*(base.layers if base else ()), *layers)
    config = build_config(
        platform=platform,
        created=created_at,
        fields=user_fields,
        diff_ids=[b.diff_id for b in all_layers],
        base=base.config if base else None,
        new_layers=len(layers),
    )
    config_bytes = json_bytes(config)
    ref = None
    if name:
        ref = parse_image_name(
            name, tag, default_tag=content_tag(sha256_bytes(config_bytes)), where=where
        )
    image = Image(config_bytes, all_layers, ref, mtime=created_epoch(created_at), platform=platform)
    return Assembled(image, tuple(warnings))
