"""The rules given what they must refuse, built by `strata build` in a workspace that
loads @strata like a user's: one error line that names the attribute, exit 1.

- a uid or gid above 2^32-1, which GNU tar refuses in the PAX header it would need (as
  in Bazel, attr.int stops at 2^31-1);
- a `symlinks` target that climbs out of its store path (it reaches the store
  directory, never what was meant): the error says which absolute target to write;
- a `pull_image` whose registry trickles a blob, or serves something that is
  not a manifest: the error is the tool's own line; a tool that dies without
  a word is said to have (the rule said "see the error above", above nothing).

One workspace for the module (the tool is fetched once); one package a case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from casekit import assert_one_error, files_under, strata, workspace
from fake_registry import LAYER, Fake, serve_image, served
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_MANIFEST

ROOT = Path(__file__).resolve().parent.parent
BIG = 1 << 32

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

LOAD = 'load("@strata//rules:defs.bzl", "helper_store_path", "layered_image", "store_path")\n'
FILE = 'genrule(name = "f", outs = ["f.txt"], cmd = "echo hi > $@")\n'

CASES: dict[str, tuple[str, str, str]] = {
    # name: (BUILD of the package, target, expected error line after the rules' place)
    # attr.int is a Java int in Bazel ("want value in signed 32-bit range"), and now in
    # strata's engine too: larger ids never reach a tar header
    "uid above 2^32-1": (
        f'{LOAD}{FILE}store_path(name = "p", srcs = {{":f": "f.txt"}})\n'
        f'layered_image(name = "img", contents = [":p"], uid = {BIG})\n',
        "img",
        rf"//uid:img: attribute 'uid' of layered_image_rule must be in the signed 32-bit range "
        rf"\(got {BIG}\); use a number from -2147483648 to 2147483647$",
    ),
    "gid above 2^31-1": (
        f'{LOAD}{FILE}store_path(name = "p", srcs = {{":f": "f.txt"}})\n'
        f'layered_image(name = "img", contents = [":p"], gid = {BIG // 2})\n',
        "img",
        rf"//gid:img: attribute 'gid' of layered_image_rule must be in the signed 32-bit range "
        rf"\(got {BIG // 2}\)",
    ),
    "store_path symlink out of the path": (
        f'{LOAD}{FILE}store_path(name = "p", srcs = {{":f": "share/f.txt"}},\n'
        '    symlinks = {"bin/passwd": "../../../etc/passwd"})\n',
        "p",
        r"//link:p: attribute 'symlinks': the target of 'bin/passwd' leaves the store path, "
        r'for /nix/etc/passwd \(got "../../../etc/passwd"\); write an absolute target '
        r'\(e.g. "/etc/passwd"\) or a relative one that stays inside$',
    ),
    "store_path symlink to the store directory": (
        f'{LOAD}{FILE}store_path(name = "p", srcs = {{":f": "f.txt"}},\n'
        '    symlinks = {"store": ".."}, store_dir = "/gnu/store")\n',
        "p",
        r"//storelink:p: attribute 'symlinks': the target of 'store' leaves the store path, "
        r"for /gnu/store \(got \"..\"\)",
    ),
    "helper_store_path symlink out of the path": (
        f'{LOAD}helper_store_path(name = "h", symlinks = {{"etc/ssl": "../../../../etc/ssl"}})\n',
        "h",
        r"//helper:h: attribute 'symlinks': the target of 'etc/ssl' leaves the store path, for "
        r'/etc/ssl \(got "../../../../etc/ssl"\); write an absolute target \(e.g. "/etc/ssl"\)',
    ),
    "pull_image from a registry trickling a blob": (
        'filegroup(name = "base", srcs = ["@slow//:image"])\n',
        "base",
        r"@slow: pulling http://127.0.0.1:\d+/team/app failed: talking to "
        r"registry http://127.0.0.1:\d+ took longer than the deadline \(got 3 s, stopped during "
        r"blob sha256:[0-9a-f]{64}\); check the network and the registry, or raise "
        r"pull_image's timeout$",
    ),
    "pull_image of something that is not a manifest": (
        'filegroup(name = "base", srcs = ["@junk//:image"])\n',
        "base",
        r"@junk: pulling http://127.0.0.1:\d+/team/app failed: manifest "
        r"sha256:[0-9a-f]{64} is not JSON \(got Expecting value: .*\); the registry did not "
        r"serve an image manifest: check the repository and tag$",
    ),
    "pull_image whose tool dies without a word": (
        'filegroup(name = "base", srcs = ["@mute//:image"])\n',
        "base",
        r"@mute: pulling http://127.0.0.1:\d+/team/app failed \(got exit 9 and no message: the "
        r"pull was killed, or ran past timeout = 3 s\); raise timeout, or check the network and "
        r"the registry$",
    ),
}
PACKAGES = {
    "uid above 2^32-1": "uid",
    "gid above 2^31-1": "gid",
    "store_path symlink out of the path": "link",
    "store_path symlink to the store directory": "storelink",
    "helper_store_path symlink out of the path": "helper",
    "pull_image from a registry trickling a blob": "slowpull",
    "pull_image of something that is not a manifest": "junkpull",
    "pull_image whose tool dies without a word": "mutepull",
}
# An interpreter that answers find_python's version check, then dies as a killed pull would.
MUTE_PYTHON = '#!/bin/sh\ncase "$1" in -c) echo True ;; *) exit 9 ;; esac\n'
JUNK = b"<html>please log in</html>\n"


@pytest.fixture(scope="module")
def registry() -> Iterator[tuple[Fake, str]]:
    """A registry that sends blob bodies a byte every 0.2 s and serves one HTML 'manifest'."""
    state = Fake(trickle=0.2, trickled="/blobs/")
    with served(state) as url:
        yield state, url


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, registry: tuple[Fake, str]) -> tuple[Path, Path]:
    state, address = registry
    digest = serve_image(state, [LAYER])
    state.manifests[sha256_bytes(JUNK)] = (JUNK, OCI_MANIFEST)
    tmp = tmp_path_factory.mktemp("rules-inputs")
    mute = tmp / "mute-python"
    mute.write_text(MUTE_PYTHON)
    mute.chmod(0o755)
    pulls = "".join(
        f'pull_image(name = "{name}", registry = "{address}", repository = "team/app",\n'
        f'    digest = "{pinned}", timeout = 3{extra})\n'
        for name, pinned, extra in (
            ("slow", digest, ""),
            ("junk", sha256_bytes(JUNK), ""),
            ("mute", digest, f', python = "{mute}"'),
        )
    )
    files: dict[str, str | bytes] = {
        "WORKSPACE": f'workspace(name = "w")\nlocal_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
        "strata_dependencies()\n"
        'load("@strata//rules/private:registry.bzl", "pull_image")\n' + pulls,
    }
    for case, pkg in PACKAGES.items():
        files[f"{pkg}/BUILD"] = CASES[case][0]
    root = workspace(tmp / "ws", files)
    return root, tmp / "ob"


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_rule_given_what_it_must_refuse_is_one_error(
    ws: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    root, ob = ws
    _build, target, expected = CASES[case]
    pkg = PACKAGES[case]
    got = strata(
        root,
        "build",
        f"--output_base={ob}",
        f"--disk_cache={tmp_path / 'cache'}",
        f"//{pkg}:{target}",
        env={"STRATA_BLOB_STORE": str(tmp_path / "blobs")},
    )
    # analysis errors at the BUILD line (as Bazel), repository rule errors in the .bzl
    assert_one_error(got, rf"^error: \S+:\d+:\d+: (in \w+ rule )?{expected}")
    assert "see the error above" not in got.err
    assert files_under(ob / "execroot" / "w" / "bazel-out" / "k8-fastbuild" / "bin" / pkg) == []
    assert files_under(tmp_path / "cache") == []
