"""A registry behind TLS with its own CA, through the rules, under strata and Bazel 4.2.3.

What a user does: `strata pull-digest --ca-file` prints a `pull_image(...)`,
pasted as it is into WORKSPACE; an `image_index` built on that base is pushed
by an `image_push` with `ca_file`. The index reaches the registry as the
index the layout holds (skopeo reads the same digest back), the second
engine's push of the same bytes uploads nothing, and a `pull_image` without
the CA fails with one line naming its repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import app_layer, make_layer
from realtools import need, run
from registry_server import RegistryServer
from strata.cli import main
from strata.oci.digest import sha256_bytes
from strata.oci.image import assemble
from strata.oci.manifest import OCI_INDEX
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.push import push

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = """workspace(name = "tlstest")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "pull_image", "strata_dependencies")

strata_dependencies()

{pinned}
{without_ca}"""

BUILD = """load(
    "@strata//rules:defs.bzl",
    "docker_image",
    "image_index",
    "image_push",
    "layered_image",
    "store_path",
)

genrule(
    name = "msg",
    outs = ["msg.txt"],
    cmd = "echo pushed over TLS > $@",
)

store_path(
    name = "msg-1.0",
    srcs = {{":msg": "share/msg.txt"}},
)

docker_image(
    name = "amd",
    architecture = "amd64",
    files = {{":msg": "/msg.txt"}},
    from_image = "@base",
    tag = "amd64",
)

layered_image(
    name = "arm",
    architecture = "arm64",
    contents = [":msg-1.0"],
    tag = "arm64",
)

image_index(
    name = "multi",
    image_name = "team/multi",
    images = [":amd", ":arm"],
    tag = "1.0",
)

image_push(
    name = "push",
    ca_file = "{cert}",
    image = ":multi",
    registry = "{host}",
    repository = "team/multi",
    tags = ["1.0"],
)

image_push(
    name = "relative_ca",
    ca_file = "certs/ca.pem",
    image = ":multi",
    registry = "{host}",
    repository = "team/multi",
)

docker_image(
    name = "on_unpinned_ca",
    from_image = "@base_no_ca",
)
"""


@pytest.fixture(scope="module")
def tls() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-registry-tls-rules-", dir="/tmp"))
    server = RegistryServer(root, "tls").start()
    try:
        yield server
    finally:
        server.stop()


def _pinned_snippet(tmp_path: Path, tls: RegistryServer, capsys: pytest.CaptureFixture[str]) -> str:
    """A base image on the registry, pinned with `strata pull-digest --ca-file`."""
    blob = make_layer(tmp_path / "base-layer", app_layer, "gzip")[0]
    base = assemble(
        layers=[blob], fields={"Cmd": ["/opt/app/run"]}, platform=parse_platform("x86_64")
    ).image
    write_oci_layout(tmp_path / "base", [base])
    client = RegistryClient(Registry.parse(tls.host), Options(ca_file=str(tls.cert), env={}))
    push(client, "base/base", tmp_path / "base", ["1"], where="t")
    capsys.readouterr()
    assert main(["pull-digest", f"{tls.host}/base/base:1", "--ca-file", str(tls.cert)]) == 0
    return capsys.readouterr().out


def _strata(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "tools" / "strata"), args[0], f"--output_base={ws.parent / 'ob'}", *args[1:]],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_tls_registry_pull_digest_index_push_under_both_engines(
    tmp_path: Path, tls: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    need("skopeo")
    snippet = _pinned_snippet(tmp_path, tls, capsys)
    # The printed call carries the CA it took to reach the registry.
    assert f'    ca_file = "{tls.cert}",\n' in snippet
    # What pull-digest printed before it knew ca_file: the same call without it.
    without_ca = "".join(
        line for line in snippet.splitlines(keepends=True) if "ca_file" not in line
    ).replace('name = "base"', 'name = "base_no_ca"')
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, pinned=snippet, without_ca=without_ca)
    )
    (ws / "BUILD").write_text(BUILD.format(cert=tls.cert, host=tls.host))

    # strata: build and push the index (with its platforms' SBOMs, the layout that
    # push_sbom pushes); the registry holds the layout's index digest.
    proc = _strata(ws, "run", "//:push")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = json.loads((ws / "strata-bin" / "multi.sbom.oci" / "index.json").read_text())
    top = entries["manifests"][0]
    assert top["mediaType"] == OCI_INDEX
    assert proc.stdout == f"{tls.host}/team/multi@{top['digest']}\n"
    # 5 blobs of the images (the shallow base's layer is mounted from base/base, not
    # downloaded), then each platform's two SBOM documents and the empty config of their
    # artifact manifests (the second platform finds it there)
    assert "uploaded 10 blobs" in proc.stderr and "tags: 1.0" in proc.stderr
    assert "mounted 1" in proc.stderr
    assert "skipped 1 already present" in proc.stderr
    for entry in entries["manifests"][1:3]:
        assert f"referrers of {entry['digest']}: 2 (tag sha256-" in proc.stderr
    raw = run(
        "skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{tls.host}/team/multi:1.0"
    ).stdout
    assert sha256_bytes(raw.encode()) == top["digest"]
    assert [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]] == [
        "amd64",
        "arm64",
    ]

    # The old snippet fails with one line naming the repository, not a request file.
    proc = _strata(ws, "build", "//:on_unpinned_ca")
    assert proc.returncode == 1
    # (the tool's error is the rule's one error line, not printed above a second one)
    assert f"@base_no_ca: pulling {tls.host}/base/base failed: TLS verification failed for " in (
        proc.stderr
    )
    assert "request.json" not in proc.stderr
    # A relative ca_file would name nothing where the push runs.
    proc = _strata(ws, "build", "//:relative_ca")
    assert proc.returncode == 1
    assert (
        "//:relative_ca: attribute 'ca_file': must be an absolute path "
        '(got "certs/ca.pem"); give the full path'
    ) in proc.stderr

    # Bazel 4.2.3 builds the same bytes: its push finds every blob there already.
    bazel = need("bazel")
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--spawn_strategy=processwrapper-sandbox", "--symlink_prefix=/"]
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    pushed = run(*common, "run", *flags, "//:push", cwd=ws, env=env)
    assert pushed.stdout == f"{tls.host}/team/multi@{top['digest']}\n"
    assert "uploaded 0 blobs (0 bytes), skipped 12 already present" in pushed.stderr
    failed = subprocess.run(
        [*common, "build", *flags, "//:on_unpinned_ca"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert failed.returncode != 0
    assert f"@base_no_ca: pulling {tls.host}/base/base failed: TLS verification failed for " in (
        failed.stderr
    )
    assert "request.json" not in failed.stderr
