"""`strata action StorePath @request.json`: a store path from files, and its cached layer.

What the `store_path` rule runs, once per store path. The name is not known
when the request is written (it is a hash of the content and references), so
this one action hashes the planned content as a NAR, names it as Nix would,
checks its references, and writes the path's layer: that layer is the cached
unit that images sharing the path share. Each source is read once: the layer
is written in the same pass as the NAR, under a placeholder name that is
replaced once the hash is known (strata.store.layer_writer), so the layer
holds exactly the bytes that were hashed. At the size of a real closure a
copy of the tree would double the bytes on disk and cost the engine a file
per file to stage, hash and cache.

Request (keys sorted; `schema_version` 1):

    name          the store path's name (after `<hash>-`)
    store_dir     default "/nix/store"
    contents      path mapping items (strata.actions.request): [{"src", "dest", "mode"?},
                  {"dest", "type": "dir"|"symlink"|"file", ...}], placed relative to the
                  store path's root; a single {"src": F, "dest": ""} makes the store path a
                  single file
    references    info files (this action's `info` output) of the direct references
    compressor    of the layer, default "none" (cached layers are concatenated later)
    outputs       {"info": json, "layer": blob, "descriptor": json, "listing"?: json}; the
                  listing (strata.store.listing) names the layer's members and where they
                  lie, so that images need not read its headers; the content is hashed
                  and layered straight from the sources, never copied (the `tree` a
                  store_path target offers is a StoreTree action, unpacked from the layer
                  only when something asks for it)
    keep_dirlinks optional bool (default false), for the planned tree (strata.oci.tree)
    uid, gid, uname, gname, mtime   ownership and time of the layer entries

Read as a `StorePathRequest` (strata.actions.store_request, shared with
LinkedStorePath); any other key is an error.

The `info` output: {"path", "references", "narHash", "narSize", "closure":
[PathInfo of this path and everything it references, sorted by path]}.
"""

from __future__ import annotations

from typing import Any

from strata.actions.store_request import StorePathRequest, build_store_path


def run(req: dict[str, Any], where: str) -> None:
    build_store_path(StorePathRequest.from_json(req, where), where)
