"""The nginx, nix-db and run-as-root examples: Bazel 4.2.3 and strata build, Docker runs them.

One `bazel build` of these three packages per session, one `strata build`
(both with the images' docker-archives, `--output_groups=+tarball`);
then: the helpers' and NixDb/RunAsRoot outputs are byte-identical across
engines, the images run in a real Docker engine (httpd as nobody answering
busybox wget on 127.0.0.1 with --network=none; the run_as_root user, owner
and whiteout), and nix-store agrees with the database in the unpacked
nix-db image.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import examples_build
from examples_build import FLAGS, bazel
from realtools import DockerEngine, need, run

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["//examples/nginx/...", "//examples/nix-db/...", "//examples/run-as-root/..."]
NIX_CONFIG = "build-users-group =\nsandbox = false\nsubstituters =\n"
TARBALL = "--output_groups=+tarball"  # the images' docker-archives, which Docker loads

pytestmark = pytest.mark.realtool


@pytest.fixture(scope="session")
def bazel_bin(examples_bazel_root: Path) -> Path:
    """These packages' images under Bazel, in the session's shared output base for this
    checkout (tests/examples_build.py): after the examples' build there is nothing to do."""
    bazel(examples_bazel_root, "build", *FLAGS, TARBALL, *PACKAGES)
    return Path(bazel(examples_bazel_root, "info", FLAGS[0], "bazel-bin").strip())


@pytest.fixture(scope="session")
def strata_bin(examples_strata_base: Path) -> Path:
    """The same under the embedded engine, in the session's shared output base."""
    base = examples_strata_base
    run(ROOT / "tools" / "strata", "build", f"--output_base={base}", TARBALL, *PACKAGES, cwd=ROOT)
    return examples_build.strata_bin(base)


# Outputs of this ticket's actions (StorePath via helper_store_path, LinkedStorePath, NixDb).
OWN_OUTPUTS = [
    "nginx/bin-sh.layer.tar",
    "nginx/usr-bin-env.layer.tar",
    "nginx/fake-nss.layer.tar",
    "nginx/cacert.layer.tar",
    "nginx/webroot.layer.tar",
    "nginx/bin-sh.storepath.json",
    "nix-db/greeting-1.0.layer.tar",
    "nix-db/db.nixdb.tar",
    "nix-db/db.nixdb.json",
]


@pytest.mark.parametrize("name", OWN_OUTPUTS)
def test_helper_outputs_identical_in_both_engines(
    name: str, bazel_bin: Path, strata_bin: Path
) -> None:
    ours = (bazel_bin / "examples" / name).read_bytes()
    assert ours and ours == (strata_bin / "examples" / name).read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "nginx/nginx.tar",
        "nix-db/nix-db.tar",
        "run-as-root/run-as-root.tar",
        "run-as-root/built-as-root.tar",
    ],
)
def test_images_identical_in_both_engines(name: str, bazel_bin: Path, strata_bin: Path) -> None:
    assert (bazel_bin / "examples" / name).read_bytes() == (
        strata_bin / "examples" / name
    ).read_bytes()


def load(docker: DockerEngine, archive: Path, ref: str) -> None:
    loaded = docker.docker("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert ref in loaded.stdout


def test_nginx_serves_as_nobody(bazel_bin: Path, docker_engine: DockerEngine) -> None:
    ref = "examples/nginx/nginx:latest"
    load(docker_engine, bazel_bin / "examples/nginx/nginx.tar", ref)
    started = docker_engine.docker("run", "-d", "--network=none", ref)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        url = "http://127.0.0.1:8080/index.html"
        page = ""
        for _ in range(50):  # httpd binds within moments; poll, no wall-clock threshold
            got = docker_engine.docker("exec", cid, "/bin/wget", "-q", "-O", "-", url)
            if got.returncode == 0:
                page = got.stdout
                break
        assert page == "<h1>Hello from busybox httpd, serving as nobody</h1>\n"
        ps = docker_engine.docker("exec", cid, "/bin/ps", "-o", "user,comm").stdout
        assert [line.split() for line in ps.splitlines() if "httpd" in line] == [
            ["nobody", "httpd"]
        ]
        who = docker_engine.docker("exec", cid, "/bin/id", "nobody").stdout
        assert who.startswith("uid=65534(nobody) gid=65534(nobody)")
        env = docker_engine.docker("exec", cid, "/usr/bin/env").stdout
        assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env.splitlines()
        sh = docker_engine.docker("exec", cid, "/bin/sh", "-c", "echo $((6 * 7))").stdout
        assert sh == "42\n"
        bundle = docker_engine.docker("exec", cid, "/bin/cat", "/etc/ssl/certs/ca-bundle.crt")
        host = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
        assert bundle.stdout == host
    finally:
        docker_engine.docker("rm", "-f", cid)


def test_run_as_root_user_owner_and_deletion(bazel_bin: Path, docker_engine: DockerEngine) -> None:
    ref = "examples/run-as-root/run-as-root:latest"
    load(docker_engine, bazel_bin / "examples/run-as-root/run-as-root.tar", ref)
    proc = docker_engine.docker("run", "--rm", "--network=none", ref)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "app:x:1000:1000:app user:/srv/app:/bin/sh\n"
        "app:app 1000:1000 /srv/app\n"
        "app:app 1000:1000 /srv/app/data.txt\n"
        "remove-me: deleted\n"
    )
    # the parent still has the file: the deletion is the child's whiteout
    parent = "examples/run-as-root/parent:latest"
    load(docker_engine, bazel_bin / "examples/run-as-root/parent.tar", parent)
    cat = docker_engine.docker(
        "run", "--rm", "--network=none", parent, "/bin/cat", "/srv/remove-me"
    )
    assert cat.stdout == "the child image deletes this file\n"
    # runAsRoot semantics: the parent's layers, then exactly one more layer
    with tarfile.open(bazel_bin / "examples/run-as-root/run-as-root.tar") as t:
        child = json.load(t.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type]
    with tarfile.open(bazel_bin / "examples/run-as-root/parent.tar") as t:
        mother = json.load(t.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type]
    assert len(child) == len(mother) + 1


def test_docker_image_run_as_root(bazel_bin: Path, docker_engine: DockerEngine) -> None:
    # buildImage's runAsRoot: the script ran in the image's own root (copy_to_root at /)
    ref = "examples/run-as-root/built-as-root:latest"
    archive = bazel_bin / "examples/run-as-root/built-as-root.tar"
    load(docker_engine, archive, ref)
    proc = docker_engine.docker("run", "--rm", "--network=none", ref)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1000:1000 750 /data\nwritten as root\nremove-me: deleted\n"
    with tarfile.open(archive) as t:
        layers = json.load(t.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type]
        with tarfile.open(fileobj=t.extractfile(layers[-1])) as top:
            names = {m.name.rstrip("/"): m for m in top.getmembers()}
    # the script's layer: its changes only, the deletion as a whiteout, owners recorded
    assert names["data"].uid == 1000 and names["data"].mode == 0o750
    assert "srv/.wh.remove-me" in names and "etc/motd" in names
    assert not any(n.startswith("bin/") for n in names)


def unpack(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as outer:
        layers = json.load(outer.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type]
        for name in layers:
            member = outer.extractfile(name)
            assert member is not None
            with tarfile.open(fileobj=member, mode="r:*") as layer:
                layer.extractall(dest, filter="fully_trusted")


def test_nix_db_image_agrees_with_nix_store(
    bazel_bin: Path, tmp_path: Path, docker_engine: DockerEngine
) -> None:
    nix_store = need("nix-store")
    pkg = bazel_bin / "examples/nix-db"
    greet = json.loads((pkg / "greet-1.0.storepath.json").read_text())["path"]
    greeting = json.loads((pkg / "greeting-1.0.storepath.json").read_text())["path"]
    root = tmp_path / "root"
    unpack(pkg / "nix-db.tar", root)
    assert (root / "nix/var/nix/db/db.sqlite").is_file()
    # include_nix_db is the NixDb layer: gcroots link each of the image's contents
    gcroot = root / "nix/var/nix/gcroots/docker" / Path(greet).name
    assert gcroot.is_symlink() and str(gcroot.readlink()) == greet
    env = {"NIX_CONFIG": NIX_CONFIG, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    store = ["--store", f"local?root={root}"]
    refs = run(nix_store, *store, "-q", "--references", greet, env=env).stdout.split()
    assert refs == [greeting]
    closure = run(nix_store, *store, "-q", "--requisites", greet, env=env).stdout.split()
    assert sorted(closure) == sorted([greet, greeting])
    verify = subprocess.run(
        [nix_store, *store, "--verify", "--check-contents"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0 and "modified" not in verify.stderr, verify.stderr
    ref = "examples/nix-db/nix-db:latest"
    load(docker_engine, pkg / "nix-db.tar", ref)
    proc = docker_engine.docker("run", "--rm", "--network=none", ref)
    assert proc.stdout == "Hello from a registered store path\n", proc.stderr
