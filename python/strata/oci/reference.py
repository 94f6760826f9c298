"""Image names and tags, checked against the distribution reference grammar.

`docker load` and registries reject a name that breaks the grammar, but only
after the whole build; we check it when the request is read. Repository names
must be lowercase, so we lowercase them (as nixpkgs' dockerTools does) rather
than fail. A name may carry a registry host with a port
(`registry.example.com:5000/team/app`), which is why the tag is split off at
the last colon after the last slash only.

Grammar: https://github.com/distribution/reference/blob/main/reference.go
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.errors import UserError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-f:]+\])(?::[0-9]+)?"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_MAX_NAME = 255
DEFAULT_TAG_LENGTH = 32


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def split_tag(text: str) -> tuple[str, str | None]:
    """`host:5000/app:1.0` → ("host:5000/app", "1.0"); a colon before the last "/" is a port."""
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1 :]
    return text, None


def parse_image_name(
    name: str, tag: str | None, *, default_tag: str, where: str = "name"
) -> ImageRef:
    """Check and normalise an image name and tag.

    `name` may include `:tag`; an explicit `tag` wins. With no tag at all,
    `default_tag` (a content hash of the image) is used, so two different
    images never share a tag by accident.
    """
    if "@" in name:
        raise UserError(
            f"image name must not contain a digest (got {name!r}); "
            "give a name and a tag, the digest is computed",
            where=where,
        )
    repo, inline_tag = split_tag(name.strip())
    repo = repo.lower()
    if not repo or len(repo) > _MAX_NAME or not _NAME.fullmatch(repo):
        raise UserError(
            f"invalid image name (got {name!r}); use lowercase letters, digits and "
            "separators (. _ - /), optionally after a registry host[:port]/, "
            "e.g. registry.example.com:5000/team/app",
            where=where,
        )
    chosen = tag if tag else inline_tag if inline_tag else default_tag
    if not _TAG.fullmatch(chosen):
        raise UserError(
            f"invalid image tag (got {chosen!r}); use up to 128 letters, digits, "
            "'_', '.' and '-', not starting with '.' or '-'",
            where=where,
        )
    return ImageRef(repo, chosen)


def content_tag(config_digest: str) -> str:
    """The default tag: the first 32 hex digits of the config digest (as nixpkgs does)."""
    return config_digest.partition(":")[2][:DEFAULT_TAG_LENGTH]
