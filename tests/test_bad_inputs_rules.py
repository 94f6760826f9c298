"""The bad-input suite, rules and registries group: strata's rules given bad attributes, and
registries that misbehave under pull_image, `strata pull-digest` and image_push.

Cases: tests/fixtures/bad_inputs/rule_cases.py and registry_cases.py. One
workspace (loading this checkout as @strata, with strata_dependencies()) and
one output base serve them all, so the tool is installed once; each rule
mistake is a package of its own, each registry fault a repository of its own
on one fault server (tests/fault_server.py) or on a real registry.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from badinput_kit import ROOT, action_error, one_error, recovered, strata
from fault_server import FaultServer
from registry_server import RegistryServer
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.push import push

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "bad_inputs"))
from registry_cases import OCI_MANIFEST, REAL_CASES, REGISTRY_CASES, Ctx, Image, sha  # noqa: E402
from rule_cases import OK, RULE_CASES  # noqa: E402

pytestmark = pytest.mark.realtool  # a real registry (docker-registry) for REAL_CASES

IMAGE_OUTPUTS = {"i.tar", "i.oci", "i.image.json"}
TOOL_INSTALL = 900.0
"""Seconds the first build may take: it installs the pinned tool (pip, from the lock file)."""


@dataclass(frozen=True)
class Registries:
    fault: FaultServer
    real: RegistryServer
    pins: dict[str, str]
    """pull_image digest of each pull case (`p<i>`, `real<i>`)."""


def _layout(top: Path, image: Image) -> Path:
    """`image` as an OCI image layout, as image_push and the library's push read one."""
    blobs = top / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (image.layer, image.config, image.manifest):
        (blobs / sha(data).partition(":")[2]).write_bytes(data)
    (top / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}  # fmt: skip
    (top / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return top


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    top = tmp_path_factory.mktemp("bad-registries")
    fault = FaultServer().start()
    real = RegistryServer(top / "registry", "plain").start()
    pins: dict[str, str] = {}
    try:
        for i, (_name, _how, damage, _regex) in enumerate(REGISTRY_CASES):
            ctx = Ctx(fault, f"c{i}/img", Image.make(f"image {i}\n"))
            ctx.serve(ctx.image)
            pins[f"p{i}"] = damage(ctx) or ctx.image.digest
        client = RegistryClient(Registry.parse(real.address), Options(env={}))
        for i in range(len(REAL_CASES)):
            image = Image.make(f"real image {i}\n")
            push(client, f"real{i}/img", _layout(top / f"real{i}", image), ["v1"], where="test")
            pins[f"real{i}"] = image.digest
        yield Registries(fault, real, pins)
    finally:
        fault.stop()
        real.stop()


def _pulls(r: Registries) -> tuple[str, str]:
    """WORKSPACE lines pulling every pull case, and pulls/BUILD naming each pulled image."""
    lines = ['load("@strata//rules/private:registry.bzl", "pull_image")']
    build = []
    for name, digest in r.pins.items():
        if name.startswith("p") and REGISTRY_CASES[int(name[1:])][1] != "pull":
            continue
        address, repo = (r.real.address, f"{name}/img") if name.startswith("real") else (
            r.fault.url, f"c{name[1:]}/img")  # fmt: skip
        lines.append(
            f'pull_image(name = "{name}", registry = "{address}", repository = "{repo}", '
            # A full pull: the faults are in what a pull downloads, layers included.
            f'digest = "{digest}", shallow = False)'
        )
        build.append(f'filegroup(name = "{name}", srcs = ["@{name}//:image"])')
    return "\n".join(lines) + "\n", "\n".join(build) + "\n"


PUSH_BUILD = """load("@strata//rules:defs.bzl", "docker_image", "image_push")
genrule(name = "f", outs = ["f.txt"], cmd = "echo pushed > $@")
docker_image(name = "app", files = {":f": "/f.txt"})
"""


@pytest.fixture(scope="module")
def rules_ws(tmp_path_factory: pytest.TempPathFactory, registries: Registries) -> Path:
    ws = tmp_path_factory.mktemp("bad-rules") / "ws"
    ws.mkdir()
    workspace_pulls, pulls_build = _pulls(registries)
    (ws / "WORKSPACE").write_text(
        'workspace(name = "w")\n'
        f'local_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
        "strata_dependencies()\n" + workspace_pulls
    )
    (ws / "good").mkdir()
    (ws / "good" / "BUILD").write_text(OK)
    for i, (_name, build, _target, _regex) in enumerate(RULE_CASES):
        (ws / f"r{i:02}").mkdir()
        (ws / f"r{i:02}" / "BUILD").write_text(OK + build)
    (ws / "pulls").mkdir()
    (ws / "pulls" / "BUILD").write_text(pulls_build)
    (ws / "push").mkdir()
    (ws / "push" / "BUILD").write_text(PUSH_BUILD + "".join(
        f'image_push(name = "u{i}", image = ":app", registry = "{registries.fault.url}", '
        f'repository = "c{i}/img", tags = ["v1"])\n'
        for i, case in enumerate(REGISTRY_CASES) if case[1] == "push"
    ))  # fmt: skip
    rc, err = strata(["build", f"--output_base={ws.parent / 'ob'}", "//good:ok", "//push:app"], ws,
                     seconds=TOOL_INSTALL)  # fmt: skip
    assert rc == 0, err
    return ws


@pytest.mark.parametrize("i", range(len(RULE_CASES)), ids=[c[0] for c in RULE_CASES])
def test_rule_attribute_mistake(i: int, rules_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _name, _build, target, regex = RULE_CASES[i]
    pkg = f"r{i:02}"
    ob = rules_ws.parent / "ob"
    rc, err = strata(["build", f"--output_base={ob}", f"//{pkg}:{target}"], rules_ws, capsys)
    bin_dir = ob / "execroot" / "w" / "bazel-out" / "k8-fastbuild" / "bin" / pkg
    if isinstance(regex, tuple):
        mnemonic, pattern = regex
        pattern = pattern.replace("{pkg}", pkg).replace("{mnemonic}", mnemonic)
        action_error(rc, err, f"//{pkg}:{target}", mnemonic, pattern)
        # The failed action left none of its outputs (the image's archive, layout, info).
        left = [p.name for p in bin_dir.glob(f"{target}.*") if p.name in IMAGE_OUTPUTS]
        assert not left, left
    else:
        one_error(rc, err, regex.replace("{pkg}", pkg))
        # Analysis failed: nothing of the target was written.
        assert not list(bin_dir.glob(f"{target}*")), list(bin_dir.glob(f"{target}*"))


# -- registries that misbehave ----------------------------------------------------------------


@pytest.mark.parametrize("i", range(len(REGISTRY_CASES)), ids=[c[0] for c in REGISTRY_CASES])
def test_misbehaving_registry(
    i: int, rules_ws: Path, registries: Registries, capfd: pytest.CaptureFixture[str]
) -> None:
    _name, how, _fault, regex = REGISTRY_CASES[i]
    ob = rules_ws.parent / "ob"
    if how == "pull":
        rc, err = strata(["build", f"--output_base={ob}", f"//pulls:p{i}"], rules_ws, capfd)
        _pull_failed(rc, err, f"p{i}", regex)
    elif how == "digest":
        ref = f"{registries.fault.address}/c{i}/img:v1"
        rc, err = strata(["pull-digest", ref, "--plain-http"], rules_ws, capfd)
        assert regex is not None
        one_error(rc, err, regex)
    else:
        rc, err = strata(["run", f"--output_base={ob}", f"//push:u{i}"], rules_ws, capfd)
        assert regex is not None
        one_error(rc, err, regex)


@pytest.mark.parametrize("i", range(len(REAL_CASES)), ids=[c[0] for c in REAL_CASES])
def test_damaged_blob_in_a_real_registry(
    i: int, rules_ws: Path, registries: Registries, capfd: pytest.CaptureFixture[str]
) -> None:
    _name, damage, regex = REAL_CASES[i]
    damage(registries.real, sha(Image.make(f"real image {i}\n").layer))
    ob = rules_ws.parent / "ob"
    rc, err = strata(["build", f"--output_base={ob}", f"//pulls:real{i}"], rules_ws, capfd)
    _pull_failed(rc, err, f"real{i}", regex)


def _pull_failed(rc: int, err: str, name: str, regex: str | None) -> None:
    """pull_image's one line: the rule's, naming the repository and carrying the tool's own
    reason (nothing "above" to point at); or, for `regex` None, a build that succeeds."""
    if regex is None:
        recovered(rc, err, [])
        return
    one_error(
        rc,
        err,
        rf"error: external/strata/rules/private/registry\.bzl:\d+:\d+: @{name}: pulling \S+ "
        r"failed: " + regex,
    )
