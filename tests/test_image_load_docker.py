"""image_load into a real Docker engine (20.10): only the layers the daemon lacks are sent.

Each test builds its own small workspace with `strata run`: a base image of
busybox and 3 MB of random data, and images on top of it with one small layer
each. A random stamp in every layer below the top keeps each test's layers its
own, whatever else the daemon holds. The figures come from image_load's own
line, `sent <n> bytes of the <size>-byte image archive: ...`, and are checked
against the sizes of the archive's members.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from realtools import DockerEngine, run
from strata.actions import image_load as load_action
from strata.oci.docker_load import index_archive

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20

WORKSPACE = """local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

BUILD = """load("@strata//rules:defs.bzl", "docker_image", "image_load", "store_path")

genrule(name = "busybox_bin", outs = ["busybox.bin"], cmd = "cp /bin/busybox $@")

genrule(name = "data_bin", outs = ["data.bin"], cmd = "head -c 3000000 /dev/urandom > $@")

genrule(name = "stamp", outs = ["stamp.bin"], cmd = "head -c 32 /dev/urandom > $@")

store_path(
    name = "busybox",
    srcs = {":busybox_bin": "bin/busybox", ":stamp": "share/stamp"},
    executables = ["bin/busybox"],
)

docker_image(
    name = "base",
    copy_to_root = [":busybox"],
    files = {":data_bin": "/data/blob"},
    tag = "1",
)

[
    docker_image(
        name = name,
        from_image = ":base",
        files = {name + ".txt": "/msg"},
        config = {"Cmd": ["/bin/busybox", "cat", "/msg"]},
        image_name = "incload/" + name,
        tag = "1",
    )
    for name in ["app", "other"]
]

[image_load(name = "load_" + name, image = ":" + name) for name in ["base", "app", "other"]]
"""

SENT = re.compile(r"^sent (\d+) bytes of the (\d+)-byte image archive: (\d+) of (\d+) layers", re.M)


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(WORKSPACE.format(root=ROOT))
    (ws / "BUILD").write_text(BUILD)
    (ws / "app.txt").write_text("app one\n")
    (ws / "other.txt").write_text("other\n")
    return ws


def _load(
    ws: Path, target: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    argv = [ROOT / "tools" / "strata", "run", f"--output_base={ws.parent / 'out'}", f"//:{target}"]
    proc = run(*argv, cwd=ws, env=env)
    found = SENT.search(proc.stderr)
    assert found, proc.stderr
    sent, size, layers, total = map(int, found.groups())
    return proc, {"sent": sent, "size": size, "layers": layers, "total": total}


def _archive(ws: Path, name: str) -> Path:
    (found,) = (ws.parent / "out").glob(f"execroot/*/bazel-out/k8-fastbuild/bin/{name}.tar")
    return found


def _layer_sizes(archive: Path) -> list[int]:
    """Sizes of the archive's layer members, in the manifest's order."""
    index = index_archive(archive)
    with tarfile.open(archive) as tar:
        return [tar.getmember(name).size for name in index.layer_chains]


def _check_only_the_top_layer_went(ws: Path, image: str, figures: dict[str, int]) -> None:
    layers = _layer_sizes(_archive(ws, image))
    print(f"{image}: sent {figures['sent']} of {figures['size']} bytes; layers {layers}")
    assert (figures["layers"], figures["total"]) == (1, 3)
    assert figures["sent"] <= layers[-1] + MB  # the goal: that layer + 1 MB
    assert figures["sent"] < figures["size"] - sum(layers[:-1])  # no base byte went


def _load_and_run(ws: Path, image: str, engine: DockerEngine, said: str) -> dict[str, int]:
    """Load `image` with its image_load target; the loaded image must say `said`."""
    proc, figures = _load(ws, f"load_{image}", engine.env)
    assert f"Loaded image: incload/{image}:1" in proc.stdout
    out = engine.docker("run", "--rm", "--network=none", f"incload/{image}:1")
    assert out.stdout == said
    return figures


def test_second_load_after_a_one_layer_change_sends_that_layer(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    ws = _workspace(tmp_path)
    figures = _load_and_run(ws, "app", docker_engine, "app one\n")
    # a first load into a daemon that has none of it: the whole archive
    assert figures["sent"] == figures["size"] == _archive(ws, "app").stat().st_size
    assert figures["layers"] == figures["total"] == 3
    (ws / "app.txt").write_text("app two\n")
    figures = _load_and_run(ws, "app", docker_engine, "app two\n")
    _check_only_the_top_layer_went(ws, "app", figures)


def test_first_load_of_an_image_on_a_shared_base_sends_only_its_own_layers(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    ws = _workspace(tmp_path)
    _load_and_run(ws, "app", docker_engine, "app one\n")
    figures = _load_and_run(ws, "other", docker_engine, "other\n")
    _check_only_the_top_layer_went(ws, "other", figures)


def test_a_daemon_that_cannot_be_asked_gets_the_full_archive(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    ws = _workspace(tmp_path)
    _load(ws, "load_app", docker_engine.env)
    # A docker whose image listing is refused (as a proxy that allows only load would).
    wrapper = tmp_path / "bin" / "docker"
    wrapper.parent.mkdir()
    real = run("sh", "-c", "command -v docker").stdout.strip()
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = image ]; then echo "permission denied: image listing" >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {**docker_engine.env, "PATH": f"{wrapper.parent}:{docker_engine.env['PATH']}"}
    (ws / "app.txt").write_text("app three\n")
    proc, figures = _load(ws, "load_app", env)
    assert (
        "note: //:load_app: cannot ask the daemon which layers it has "
        "(docker image ls: permission denied: image listing); sending the full archive"
    ) in proc.stderr
    assert figures["sent"] == figures["size"] == _archive(ws, "app").stat().st_size
    out = docker_engine.docker("run", "--rm", "--network=none", "incload/app:1")
    assert out.stdout == "app three\n"


def test_a_layer_removed_after_the_query_gets_the_full_archive(
    tmp_path: Path,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = _workspace(tmp_path)
    _load(ws, "load_app", docker_engine.env)
    archive = _archive(ws, "app")
    asked = load_action.present_chain_ids

    def then_removed(docker: str) -> frozenset[str]:
        present = asked(docker)
        docker_engine.docker("rmi", "incload/app:1")  # its layers go with it
        return present

    monkeypatch.setenv("DOCKER_HOST", docker_engine.env["DOCKER_HOST"])
    monkeypatch.setattr(load_action, "present_chain_ids", then_removed)
    req = {"image": str(archive), "label": "//:load_app", "schema_version": 1}
    load_action.run(req, "load.json")
    out, err = capsys.readouterr()
    assert out == "Loaded image: incload/app:1\n"
    member = _layer_member(archive)
    assert re.search(
        "^note: //:load_app: the load without the daemon's layers failed "
        rf"\(open /.*/{member}: no such file or directory\); sending the full archive$",
        err,
        re.M,
    ), err
    size = archive.stat().st_size
    assert f"sent {size} bytes of the {size}-byte image archive: 3 of 3 layers" in err
    run_out = docker_engine.docker("run", "--rm", "--network=none", "incload/app:1")
    assert run_out.stdout == "app one\n"


def _layer_member(archive: Path) -> str:
    """The first layer Docker opens: the base's bottom layer."""
    return next(iter(index_archive(archive).layer_chains))
