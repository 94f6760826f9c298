"""`strata action LinkedStorePath @request.json`: a store path of links into another one.

dockerTools' `binSh` and `usrBinEnv` are store paths holding one symlink
into another store path (`bin/sh -> /nix/store/<hash>-bash/bin/bash`). The
target's hash is known only once that path is built, so the rule cannot
write the link: this action reads the target's `info` file, turns each link
into a `symlink` content item, adds the target to the references, and then
builds the store path exactly as the StorePath action does (same outputs).
Its `tree`, like every store path's, is the StoreTree unpack of the layer,
which makes such absolute links resolvable inside the tree.

Request (`LinkedStorePathRequest`): a StorePath request (see strata.actions.store_path) plus

    links   [{"dest": "bin/sh", "info": <info file of the target>, "subpath": "bin/bash"}];
            each `info` must also be listed in `references`
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any

from strata.actions.request import field, read_info
from strata.actions.store_request import StorePathRequest, build_store_path
from strata.errors import UserError


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinkedStorePathRequest(StorePathRequest):
    links: list[Any]
    contents: list[Any] = dataclasses.field(default_factory=list)


def run(req: dict[str, Any], where: str) -> None:
    request = LinkedStorePathRequest.from_json(req, where)
    links = request.links
    references = request.references
    contents = list(request.contents)
    for i, link in enumerate(links):
        at = f"{where}: links[{i}]"
        if not isinstance(link, dict) or set(link) != {"dest", "info", "subpath"}:
            raise UserError(
                f'must be {{"dest", "info", "subpath"}} (got {link!r:.80}); '
                "name the link, the target's info file and the path inside it",
                where=at,
            )
        info = field(link, "info", str, at)
        if info not in references:
            raise UserError(
                f"the link target is not a reference (got {info}); list it in references",
                where=at,
            )
        subpath = field(link, "subpath", str, at).strip("/")
        if ".." in subpath.split("/"):
            raise UserError(
                f"subpath must stay inside the target store path (got {subpath!r})", where=at
            )
        target = read_info(info, at)["path"]
        if subpath:
            target = posixpath.join(target, subpath)
        contents.append({"dest": field(link, "dest", str, at), "target": target, "type": "symlink"})
    build_store_path(dataclasses.replace(request, contents=contents), where)
