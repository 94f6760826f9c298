"""Byte parity on generated store-path sets: real Bazel 4.2.3 and strata, every output.

200 sets from a fixed seed (tests/storegen.py; the first is the shape that
first made the engines differ: links to directories in tree inputs), each
built as layered_image, stream_layered_image and docker_image, all in ONE
generated workspace: one `bazel build --keep_going` and one `strata build
--keep_going`, then every output of every set package is compared byte for
byte. A target that fails (a shape buildImage's rsync
refuses, a dangling link the store-path rules refuse) must fail under both.

On a difference the test shrinks the smallest differing set, rebuilding all
one-step-smaller candidates in one workspace a round, and prints the smallest
shape that still differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import storegen
from realtools import need
from storegen import SetSpec

ROOT = Path(__file__).resolve().parents[1]
SEED = 1111
COUNT = int(os.environ.get("STRATA_PARITY_SETS", "200"))
SHRINK_ROUNDS = 12
IMAGES = ("layered", "stream", "docker")
TARBALL = "--output_groups=+tarball"  # the images' docker-archives: compared too

pytestmark = [pytest.mark.realtool, pytest.mark.slow]


class Engines:
    """One workspace, built by Bazel and by strata; packages are replaced between builds."""

    def __init__(self, tmp: Path) -> None:
        self.ws = tmp / "ws"
        self.ws.mkdir()
        (self.ws / "WORKSPACE").write_text(
            f'local_repository(name = "strata", path = "{ROOT}")\n\n'
            'load("@strata//rules:repositories.bzl", "strata_dependencies")\n\n'
            "strata_dependencies()\n"
        )
        self.bazel = [need("bazel"), "--batch", f"--output_user_root={tmp / 'bazel-root'}"]
        self.strata_base = tmp / "strata-base"
        self.bazel_bin = Path()
        self.strata_bin = Path()
        self.log = ""
        """The end of both builds' output, for a failure message."""

    def build(self, sets: list[SetSpec], *, pool: bool) -> None:
        """Write the sets (their paths in one `pool` package, or each in its own) and build."""
        for old in self.ws.iterdir():
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
        if pool:
            paths = {q.name: q for s in sets for q in s.closure()}
            storegen.pool_file(list(paths.values()), self.ws / "pool")
        for spec in sets:
            storegen.build_file(spec, self.ws / spec.name, "pool" if pool else "")
        # The images only (a store path's tree is not theirs to build), docker-archives too.
        targets = [f"//{s.name}:{image}" for s in sets for image in IMAGES]
        flags = [
            "--keep_going",
            TARBALL,
            "--symlink_prefix=/",
            # strata's actions in sandboxed persistent workers, the rest in processwrapper's
            # sandbox: both stage only declared inputs; 40 sets took 41-51 s, not 81-163 s
            "--spawn_strategy=worker,processwrapper-sandbox",
            "--worker_sandboxing",
        ]
        bazel = subprocess.run(
            [*self.bazel, "build", *flags, *targets], cwd=self.ws, capture_output=True, text=True
        )
        info = [*self.bazel, "info", "--symlink_prefix=/", "bazel-bin"]
        out = subprocess.run(info, cwd=self.ws, capture_output=True, text=True, check=True)
        self.bazel_bin = Path(out.stdout.strip())
        strata = [str(ROOT / "tools" / "strata"), "build", f"--output_base={self.strata_base}"]
        ours = subprocess.run(
            [*strata, "--keep_going", TARBALL, *targets],
            cwd=self.ws,
            capture_output=True,
            text=True,
        )
        self.log = f"bazel:\n{bazel.stderr[-3000:]}\nstrata:\n{ours.stderr[-3000:]}"
        found = list(self.strata_base.glob("execroot/*/bazel-out/k8-fastbuild/bin"))
        assert len(found) == 1, self.log
        self.strata_bin = found[0]

    def outputs(self, engine_bin: Path, package: str) -> dict[str, str]:
        """Every output of a set package (runfiles trees and store trees aside) by digest."""
        out = {}
        for path in _files(engine_bin / package):
            rel = path.relative_to(engine_bin / package).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def same(self, package: str) -> bool:
        return self.outputs(self.bazel_bin, package) == self.outputs(self.strata_bin, package)

    def differing(self, sets: list[SetSpec]) -> list[SetSpec]:
        return [s for s in sets if not self.same(s.name)]


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.endswith((".runfiles", ".store"))]
        for name in filenames:
            if not name.endswith(".runfiles_manifest"):
                yield Path(dirpath) / name


def _streamed(command: list[str], cwd: Path) -> bytes:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout


def _streams_agree(engines: Engines, sets: list[SetSpec]) -> None:
    """Each engine's stream script writes the same archive, whose layers have the digests
    its config lists, for the first two sets whose grouped layers are join recipes."""

    def joins(spec: SetSpec) -> bool:
        layers = engines.strata_bin / spec.name / "stream.layers/layers.json"
        return layers.is_file() and any(
            g.get("join") for g in json.loads(layers.read_text())["layers"]
        )

    joined = [s for s in sets if joins(s)][:2]
    assert joined, "no set has a grouped layer: the sets do not test recipes"
    for spec in joined:
        run = [str(ROOT / "tools" / "strata"), "run", f"--output_base={engines.strata_base}"]
        ours = _streamed([*run, f"//{spec.name}:stream"], engines.ws)
        theirs = _streamed([str(engines.bazel_bin / spec.name / "stream")], engines.ws)
        assert ours == theirs, spec.name
        with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
            [manifest] = json.loads(_member(tar, "manifest.json"))
            config = json.loads(_member(tar, manifest["Config"]))
            got = [
                "sha256:" + hashlib.sha256(_member(tar, m)).hexdigest() for m in manifest["Layers"]
            ]
        assert got == config["rootfs"]["diff_ids"], spec.name


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    assert f is not None, name
    return f.read()


def test_generated_sets_give_identical_bytes_under_bazel_and_strata(tmp_path: Path) -> None:
    sets = storegen.generate(SEED, COUNT, dangling=True)
    engines = Engines(tmp_path)
    engines.build(sets, pool=True)
    assert engines.same("pool"), "store path layers differ"
    built = [s for s in sets if (engines.bazel_bin / s.name / "layered.tar").is_file()]
    docker = [s for s in sets if (engines.bazel_bin / s.name / "docker.tar").is_file()]
    # Most sets must build, or the comparison proves little (failures are rsync's and the
    # store-path rules' refusals, which both engines must share).
    assert len(built) > COUNT * 3 // 4 and len(docker) > COUNT // 2, engines.log
    assert "layered.custom.tar" in engines.outputs(engines.strata_bin, sets[0].name)
    _streams_agree(engines, built)
    bad = engines.differing(sets)
    if bad:
        worst = min(bad, key=lambda s: s.size())

        def differing(candidates: list[SetSpec]) -> list[SetSpec]:
            engines.build(candidates, pool=False)
            return engines.differing(candidates)

        small = storegen.shrink(worst, differing, SHRINK_ROUNDS)
        pytest.fail(
            f"{len(bad)} of {len(sets)} sets differ between Bazel and strata "
            f"({', '.join(s.name for s in bad[:10])}); the smallest shape that still differs:\n"
            + "\n".join(f"  {p.name}: {p.entries}" for p in small.paths)
            + f"\n  max_layers={small.max_layers} keep_dirlinks={small.keep_dirlinks}"
        )
