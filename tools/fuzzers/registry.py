"""Registry answers: manifests, indexes, configs, error bodies, auth challenges, tokens.

The real `RegistryClient.request` (challenge, token, error decoding) and
`pull`/`pin` run over a transport that answers from the input:
`responses.json` maps a request (`GET /v2/r/manifests/t`, `GET token`) to a
status, headers and a base64 body. The input starts from a consistent image
(index → manifest → config and layers, each digest right after its JSON was
bent) so the later checks are reached too.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from fuzzers.gen import BOOLS, COMPRESSIONS, damage, json_doc, layer, seeded, sha256
from fuzzers.harness import Files, Target
from strata.oci.platform import Platform
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry, Response
from strata.registry.prefetch import RemoteRef, pin
from strata.registry.pull import pull

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REPO = "r/img"
_HOWS = st.lists(st.sampled_from(COMPRESSIONS), max_size=2)
CHALLENGES = [
    'Bearer realm="http://auth.invalid/token",service="reg"',
    'Bearer realm="http://auth.invalid/token?x=1",scope="a\\"b"',
    'Basic realm="reg"',
    "Bearer",
    "Bearer realm=",
    "Negotiate abc",
    "",
]


@st.composite
def registries(draw: Any) -> Files:
    rng = draw(seeded())
    answers: dict[str, dict[str, Any]] = {}

    def serve(key: str, data: bytes, media_type: str = "") -> None:
        status = rng.choice([200] * 12 + [401, 404, 500, 403, 302])
        headers = {"content-type": media_type} if media_type else {}
        if status == 401:
            headers["www-authenticate"] = rng.choice(CHALLENGES)
        if status != 200:
            data = json_doc(rng, {"errors": [{"code": "DENIED", "message": "no"}]})
        answers[key] = {"status": status, "headers": headers, "body": data}

    layers = [layer(rng, how) for how in draw(_HOWS)]
    config = json_doc(
        rng,
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(b) for b in layers]},
        },
    )
    manifest = json_doc(
        rng,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": "x", "digest": sha256(b), "size": len(b)} for b in layers],
        },
    )
    for blob in (config, *layers):
        serve(f"GET /v2/{REPO}/blobs/{sha256(blob)}", damage(rng, blob, 0.1))
    serve(f"GET /v2/{REPO}/manifests/{sha256(manifest)}", manifest, OCI_MANIFEST)
    top, top_type = manifest, OCI_MANIFEST
    if draw(BOOLS):
        platform = {"architecture": "amd64", "os": "linux"}
        entry = {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(manifest),
            "size": len(manifest),
            "platform": platform,
        }
        top = json_doc(rng, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
        top_type = OCI_INDEX
    top_type = rng.choice([top_type, top_type, top_type, "", "text/plain", OCI_INDEX])
    serve(f"GET /v2/{REPO}/manifests/t", top, top_type)
    token = {"token": "abc"} if rng.random() < 0.5 else {"access_token": "abc"}
    serve("GET token", json_doc(rng, token))
    doc = {k: {**v, "body": base64.b64encode(v["body"]).decode()} for k, v in answers.items()}
    return {"responses.json": json.dumps(doc, sort_keys=True, indent=1).encode()}


class _Client(RegistryClient):
    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__(
            Registry.parse("http://reg.invalid"), Options(retries=1, sleep=lambda _s: None, env={})
        )
        self.answers = answers

    def _send(
        self, method: str, url: str, headers: Any, body: Any, *, where: str, stream: bool = False
    ) -> Response:
        if ".invalid" not in url:
            return Response(404, {}, b"")
        key = "GET token" if "auth.invalid" in url else f"{method} {url.split('.invalid', 1)[1]}"
        got = self.answers.get(key)
        if got is None:
            return Response(404, {}, b"")
        return Response(got["status"], got["headers"], base64.b64decode(got["body"]))


def run_registry(files: Files, scratch: Path) -> str:
    answers = json.loads(files["responses.json"])
    amd64 = Platform("amd64")
    pinned = pin(_Client(answers), RemoteRef("reg.invalid", REPO, "t", ""), amd64, "fuzz")
    result = pull(
        _Client(answers),
        BlobStore(scratch / "store"),
        REPO,
        "t",
        amd64,
        scratch / "layout",
        None,
        "fuzz",
    )
    return "index" if pinned.index else f"{result.blobs_fetched} blobs"


TARGETS = [
    Target(
        "registry-pull",
        "registry/client.py (challenges, tokens, error bodies), pull.py and prefetch.pin",
        registries(),
        run_registry,
    )
]
