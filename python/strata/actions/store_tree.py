"""`StoreTree`: the `tree` of a store path, unpacked from its layer.

Run for a `nix_store_import`ed path and for any store_path whose `tree`
something asks for. Bazel refuses tree artifacts with dangling symlinks or
links leaving the tree, and a Nix path is full of absolute links into other
paths, so such a link becomes `../`… + `nix/store/<hash>-<name>/…` (the same
target at the same depth below an image's `/`) with an empty placeholder file
at that place in the tree, as the LinkedStorePath action does. Image rules
read the tree only for names (symlink-join); bytes come from the layer.

The request is `StoreTreeRequest` below.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request, read_info
from strata.errors import UserError
from strata.oci.compress import open_decompressed
from strata.oci.rootfs import Rootfs


@dataclass(frozen=True, kw_only=True)
class StoreTreeRequest(Request):
    info: str
    """The store path's info file (StorePath or NixStoreImport)."""
    output: str
    """The tree directory: `<output>/<name>` holds the content."""
    layer: str
    """The store path's layer."""


def _placeholder(fs: Rootfs, link: str, target: str) -> None:
    """Point `link` at `target` (absolute) through the tree root, and make it resolvable.

    The `../` count is taken where the link really lies (its parents
    resolved inside the tree), so it climbs exactly to the tree root.
    """
    depth = len(fs.resolve(link)) - 1
    fs.symlink(link, "../" * depth + target.lstrip("/"))
    if fs.lstat(target) is None:
        fs.write(target, b"", 0o644)


def tree(req: dict[str, Any], where: str) -> None:
    request = StoreTreeRequest.from_json(req, where)
    info = read_info(request.info, where)
    path = str(info["path"])
    name = posixpath.basename(path).partition("-")[2]
    if name in ("", ".", "..") or not path.startswith("/"):
        raise UserError(
            f"the info file names no store path (got {path!r}); pass a nix_store_import info",
            where=where,
        )
    out = Path(request.output)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    fs = Rootfs(out, where)
    prefix = path.strip("/")
    links: dict[str, str] = {}
    with (
        open_decompressed(request.layer) as f,
        tarfile.open(fileobj=f, mode="r|") as tar,
    ):
        for member in tar:
            member_name = member.name.strip("/")
            if member_name != prefix and not member_name.startswith(prefix + "/"):
                continue
            rel = member_name[len(prefix) + 1 :]
            parts = rel.split("/") if rel else []
            below_link = any("/".join(parts[:i]) in links for i in range(1, len(parts)))
            if ".." in parts or below_link:
                # A store path is a tree (a NAR): nothing lies below a symlink.
                what = "escapes its store path" if ".." in parts else "lies below a symlink"
                raise UserError(f"layer member {what} (got {member.name!r})", where=where)
            dest = posixpath.join(name, rel) if rel else name
            if member.isdir():
                fs.mkdir(dest)
            elif member.issym():
                # The absolute target the link means in the image.
                links[rel] = posixpath.normpath(
                    posixpath.join("/" + posixpath.dirname(member_name), member.linkname)
                )
            elif member.isfile():
                src = tar.extractfile(member)
                if src is None:  # pragma: no cover - isfile() members have data
                    raise UserError(f"unreadable layer member (got {member.name!r})", where=where)
                fs.write(dest, src, 0o755 if member.mode & 0o111 else 0o644)
    for rel, absolute in sorted(links.items()):
        link = posixpath.join(name, rel) if rel else name
        inside = absolute == "/" + prefix or absolute.startswith("/" + prefix + "/")
        if inside and fs.lstat(absolute, follow_last=True) is not None:
            parent = "/".join(fs.resolve(link)[:-1]) or "."
            fs.symlink(link, posixpath.relpath(absolute.lstrip("/"), parent))
        else:
            _placeholder(fs, link, absolute)
