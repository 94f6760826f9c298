"""Pushing a blob that is not on this machine: a shallow base's layer, by mount.

An image built on `pull_image(shallow = True)` names base layers it does not
hold (strata.oci.remote_blobs). Pushed to the registry they came from, they
are either there already (the push's HEAD finds them) or are mounted from the
base's repository: `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<base
repo>`, which the registry answers 201 when it linked the blob, without a
byte going either way. A registry that declines (202, an upload session) would
need the bytes: the session is cancelled and the push stops with one error,
never sending a wrong or empty blob. Pushing such an image to another
registry is refused the same way (it would need the bytes streamed from the
base's registry, which strata does not do yet).

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#mounting-a-blob-from-another-repository
"""

from __future__ import annotations

import contextlib
import urllib.parse

from strata.errors import UserError
from strata.oci.remote_blobs import Remote
from strata.registry.client import RegistryClient, pull_scope, push_scope

_FIX = "set shallow = False on that pull_image to push its layers from this machine"


def mount_remote(
    client: RegistryClient, repository: str, digest: str, remote: Remote, where: str
) -> None:
    """Make `repository` hold `digest`, which only `remote` has, without its bytes."""
    if remote.host != client.registry.host:
        raise UserError(
            f"base layer {digest} is not on this machine and lives in another registry "
            f"(got {remote}, a shallow pull_image; pushing to {client.registry.host}); "
            f"push to {remote.host}, or {_FIX}",
            where=where,
        )
    if remote.repository == repository:
        raise UserError(
            f"base layer {digest} is missing from {remote}, where the shallow base was "
            f"pulled from (got 404 for it); {_FIX}",
            where=where,
        )
    scopes = (push_scope(repository), pull_scope(remote.repository))
    query = urllib.parse.urlencode({"mount": digest, "from": remote.repository})
    resp = client.request(
        "POST",
        f"/v2/{repository}/blobs/uploads/?{query}",
        scopes=scopes,
        where=where,
        ok=(201, 202),
    )
    if resp.status == 201:
        return
    location = resp.header("location")
    if location:
        # The upload session the registry opened instead: nothing will be sent to it.
        with contextlib.suppress(UserError):
            url = urllib.parse.urljoin(client.registry.base_url + "/", location)
            client.request("DELETE", url, scopes=scopes, where=where, ok=(204, 404))
    raise UserError(
        f"the registry declined to mount base layer {digest} from {remote.repository} "
        f"(got 202: it lacks the blob there, or mounts are off); {_FIX}",
        where=where,
    )
