from __future__ import annotations

import json

import pytest

from strata.errors import UserError
from strata.oci.manifest import Descriptor, LayerRef, index_bytes, manifest_bytes
from strata.oci.platform import parse_platform
from strata.oci.reference import content_tag, parse_image_name

D = "sha256:" + "c" * 64
LAYERS = [
    LayerRef("sha256:" + "1" * 64, 10, "sha256:" + "a" * 64, "gzip"),
    LayerRef("sha256:" + "2" * 64, 20, "sha256:" + "2" * 64, "none"),
    LayerRef("sha256:" + "3" * 64, 30, "sha256:" + "b" * 64, "zstd"),
]


def test_oci_manifest_media_types() -> None:
    m = json.loads(manifest_bytes(D, 5, LAYERS, docker=False))
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["config"] == {
        "digest": D,
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "size": 5,
    }
    assert [layer["mediaType"] for layer in m["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ]
    assert [layer["size"] for layer in m["layers"]] == [10, 20, 30]


def test_docker_manifest_media_types() -> None:
    m = json.loads(manifest_bytes(D, 5, LAYERS, docker=True))
    assert m["schemaVersion"] == 2
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [layer["mediaType"] for layer in m["layers"]] == [
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ]


def test_index() -> None:
    desc = Descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        D,
        7,
        annotations={"org.opencontainers.image.ref.name": "v1"},
        platform=parse_platform("armv7l"),
    )
    assert json.loads(index_bytes([desc])) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": D,
                "size": 7,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
                "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
            }
        ],
    }


@pytest.mark.parametrize(
    ("name", "tag", "want"),
    [
        ("registry.example.com:5000/team/app", None, "registry.example.com:5000/team/app:DEF"),
        ("Team/App", "1.0", "team/app:1.0"),
        ("localhost:5000/a:inline", None, "localhost:5000/a:inline"),
        ("localhost:5000/a:inline", "explicit", "localhost:5000/a:explicit"),
        ("a__b/c-d.e", None, "a__b/c-d.e:DEF"),
    ],
)
def test_names(name: str, tag: str | None, want: str) -> None:
    assert str(parse_image_name(name, tag, default_tag="DEF")) == want


@pytest.mark.parametrize("bad", ["", "a b", "-a", "a//b", "a/", "x@sha256:abc", "a_-b"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(UserError):
        parse_image_name(bad, None, default_tag="t")


def test_content_tag() -> None:
    assert content_tag("sha256:" + "0123456789abcdef" * 4) == "0123456789abcdef" * 2
