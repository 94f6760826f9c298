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
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# A registry host as written by the user: the grammar allows upper case in domains.
_HOST = re.compile(
    r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
    r"(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*"
    r"|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]"
)
_PORT = re.compile(r"[0-9]{1,5}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_NAME = 255
DEFAULT_TAG_LENGTH = 32

REGISTRY_HINT = (
    "use host[:port], optionally after http:// or https://, e.g. registry.example.com:5000"
)
REPOSITORY_HINT = (
    "use lowercase letters and digits joined by '.', '_', '__' or '-', "
    "in '/'-separated parts, e.g. team/app"
)
TAG_HINT = "use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"


def check_host(text: str, where: str, field: str = "registry") -> str:
    """`host[:port]` (no scheme) as the reference grammar has it; the port is 1 to 65535."""
    host, port = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end >= 0 and text[end + 1 : end + 2] == ":":
            host, port = text[: end + 1], text[end + 2 :]
    elif ":" in text:
        host, _, port = text.partition(":")
    bad_port = ":" in text[len(host) :] and not (_PORT.fullmatch(port) and 0 < int(port) < 65536)
    if not _HOST.fullmatch(host) or bad_port:
        raise UserError(f"invalid {field} (got {text!r}); {REGISTRY_HINT}", where=where)
    return text


def is_repository(text: str) -> bool:
    """A repository path: lowercase components joined by '/'."""
    return len(text) <= _MAX_NAME and _REPOSITORY.fullmatch(text) is not None


def is_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def check_repository(text: str, where: str, field: str = "repository") -> str:
    if not is_repository(text):
        raise UserError(f"invalid {field} (got {text!r}); {REPOSITORY_HINT}", where=where)
    return text


def check_tag(text: str, where: str, field: str = "tag") -> str:
    if not is_tag(text):
        raise UserError(f"invalid {field} (got {text!r}); {TAG_HINT}", where=where)
    return text


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
        raise UserError(f"invalid image tag (got {chosen!r}); {TAG_HINT}", where=where)
    return ImageRef(repo, chosen)


def content_tag(config_digest: str) -> str:
    """The default tag: the first 32 hex digits of the config digest (as nixpkgs does)."""
    return config_digest.partition(":")[2][:DEFAULT_TAG_LENGTH]
