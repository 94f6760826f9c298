"""Pushing a blob that is not on this machine: a shallow base's layer, mounted or streamed.

An image built on `pull_image(shallow = True)` names base layers it does not
hold (strata.oci.remote_blobs). Pushed to the registry they came from, they
are either there already (the push's HEAD finds them) or are mounted from the
base's repository: `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<base
repo>`, which the registry answers 201 when it linked the blob, without a
byte going either way.

Pushed to another registry (or to one that declines the mount: 202 and an
upload session, which is cancelled), the blob is streamed: read from the base's
registry and sent on in `chunk_size` PATCHes as it arrives, hashed on the way,
so at most one chunk is in memory and nothing is written to disk. The upload
is closed (the PUT that names the digest) only when the bytes that went had
the digest and size the manifest gives; otherwise it is cancelled and the push
stops with one error. The base's registry is asked with default TLS
verification and the usual `docker login` credentials.

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#mounting-a-blob-from-another-repository
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import urllib.parse
from collections.abc import Callable, Iterator
from typing import IO

from strata.errors import UserError
from strata.oci.remote_blobs import Remote
from strata.registry.blobstore import BlobMismatch
from strata.registry.client import RegistryClient, close
from strata.registry.endpoint import Options, Registry, pull_scope, push_scope

_FIX = "set shallow = False on that pull_image to push its layers from this machine"


def send_remote(
    client: RegistryClient,
    repository: str,
    digest: str,
    remote: Remote,
    *,
    chunk_size: int,
    where: str,
) -> int:
    """Make `repository` hold `digest`, which only `remote` has; the bytes sent (0: mounted)."""
    same = remote.host == client.registry.host
    if same and remote.repository == repository:
        raise UserError(
            f"base layer {digest} is missing from {remote}, where the shallow base was "
            f"pulled from (got 404 for it); {_FIX}",
            where=where,
        )
    scopes = (push_scope(repository),)
    if same and _mounted(client, repository, digest, remote, where):
        return 0
    # The push's environment (credentials) and CA directories; the base's own ca_file is
    # the pull's, which the layout does not record: Docker's certs.d serves both.
    options = Options(env=client.options.env, certs_dirs=client.options.certs_dirs)
    source = RegistryClient(Registry.parse(remote.registry, where=where), options, where=where)
    try:
        _stream(source, client, repository, digest, remote, scopes, chunk_size, where)
    finally:
        source.close()
    return remote.size


def _mounted(
    client: RegistryClient, repository: str, digest: str, remote: Remote, where: str
) -> bool:
    """Ask for a cross-repository mount; False (session cancelled) if the registry declines."""
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
        return True
    _cancel(client, resp.header("location"), scopes, where)
    return False


def _cancel(client: RegistryClient, location: str, scopes: tuple[str, ...], where: str) -> None:
    """Drop an upload session we will not finish (best effort: the registry expires it)."""
    if location:
        with contextlib.suppress(UserError):
            url = urllib.parse.urljoin(client.registry.base_url + "/", location)
            client.request("DELETE", url, scopes=scopes, where=where, ok=(204, 404))


def _chunks(body: Iterator[bytes], size: int) -> Iterator[bytes]:
    """`body` regrouped into pieces of `size` bytes (the last one shorter)."""
    pending = bytearray()
    for data in body:
        pending += data
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def _opener(data: bytes) -> Callable[[], IO[bytes]]:
    return lambda: io.BytesIO(data)


def _stream(
    source: RegistryClient,
    target: RegistryClient,
    repository: str,
    digest: str,
    remote: Remote,
    scopes: tuple[str, ...],
    chunk_size: int,
    where: str,
) -> None:
    resp = source.request(
        "GET",
        f"/v2/{remote.repository}/blobs/{digest}",
        scopes=(pull_scope(remote.repository),),
        where=where,
        stream=True,
    )
    start = target.request(
        "POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes, where=where, ok=(202,)
    )
    url = urllib.parse.urljoin(target.registry.base_url + "/", start.header("location"))
    sha, offset = hashlib.sha256(), 0
    try:
        for data in _chunks(source.iter_body(resp, f"blob {digest}", where), chunk_size):
            sha.update(data)
            if offset + len(data) > remote.size:
                break
            answer = target.request(
                "PATCH",
                url,
                scopes=scopes,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(data)),
                    "Content-Range": f"{offset}-{offset + len(data) - 1}",
                },
                body=_opener(data),
                where=where,
                ok=(202,),
            )
            offset += len(data)
            url = urllib.parse.urljoin(target.registry.base_url + "/", answer.header("location"))
    finally:
        close(resp)
    got = "sha256:" + sha.hexdigest()
    if got != digest or offset != remote.size:
        _cancel(target, url, scopes, where)
        raise BlobMismatch(
            f"base layer {digest} from {remote} has another digest or size (got {got}, "
            f"{offset} bytes; expected {remote.size}); nothing was pushed for it: fix the "
            f"base's registry, or {_FIX}",
            where=where,
        )
    query = ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    target.request(
        "PUT",
        url + query,
        scopes=scopes,
        headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
        body=_opener(b""),
        where=where,
        ok=(201, 204),
    )
