"""The examples through a real nginx WebDAV cache: teams share `//examples/...`.

Team A builds every example with `tools/strata build --remote_cache=...` in a
copy of this repository; team B, another copy in another directory with an
empty output base and disk cache, builds the same targets and runs only
whole-image actions the rules tag `no-remote-cache` (ImageAssemble,
ImageArchive, ImageIndex, ImageMerge, ImageExport), never a store path, layer,
customisation, grouping or genrule action; every file it has is byte-identical
to team A's, and the files no target asked for and no action it ran read stay
on the server (`--remote_download_outputs=toplevel`, the default). With
`--modify_execution_info=Image.*=-no-remote-cache` (Bazel's flag, honoured by
both engines) images are uploaded too and a fresh clone runs nothing. A server
stopped in the middle of a build costs one warning.

Each build of the examples runs ~90 actions (~1 min on 2 cores), so the
copies and team A's build are shared by the module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nginx_server import NginxCache
from realtools import bazel, need
from strata.engine.action import Action
from strata.engine.cache.tiered import modify_execution_info, parse_execution_info_modifier
from strata.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
STRATA = ROOT / "tools" / "strata"
BIN = "bazel-out/k8-fastbuild/bin"
IMAGE_MNEMONICS = {
    "ImageAssemble",
    "ImageArchive",
    "ImageIndex",
    "ImageMerge",
    "ImageExport",
    "LayerGroups",
}
SHARED_MNEMONICS = {
    "StorePath",
    "LinkedStorePath",
    "CustomizationLayer",
    "NixDb",
    "RunAsRoot",
    "Genrule",
}
POLICY_OFF = "--modify_execution_info=(Image|Layer).*=-no-remote-cache"
_EXPLAIN = re.compile(r"^explain: (\S+) (\S+) (\S+): ", re.M)
_SUMMARY = re.compile(r"(\d+) actions: (\d+) executed, (\d+) cache hits")


# -- --modify_execution_info (no server needed) -----------------------------------


def _action(mnemonic: str, *tags: str) -> Action:
    return Action(owner="//p:t", mnemonic=mnemonic, progress_message="", tags=tags)


def test_modify_execution_info_adds_and_removes_tags_by_whole_mnemonic() -> None:
    actions = [
        _action("ImageAssemble", "no-remote-cache"),
        _action("ImageAssembleExtra", "no-remote-cache"),
        _action("StorePath"),
    ]
    mod = parse_execution_info_modifier("ImageAssemble=-no-remote-cache,Store.*=+no-remote")
    got = modify_execution_info(actions, mod)
    assert [a.tags for a in got] == [(), ("no-remote-cache",), ("no-remote",)]
    # order matters, as in Bazel: the last entry for a key wins
    again = parse_execution_info_modifier(".*=+x,(?!Store).*=-x")
    assert [
        a.tags for a in modify_execution_info([_action("Genrule"), _action("StorePath")], again)
    ] == [
        (),
        ("x",),
    ]


@pytest.mark.parametrize("bad", ["ImageAssemble", "ImageAssemble=no-remote-cache", "=+x", "(=+x"])
def test_modify_execution_info_rejects_bad_entries(bad: str) -> None:
    with pytest.raises(UserError, match="--modify_execution_info"):
        parse_execution_info_modifier(bad)


# -- the examples through a real server --------------------------------------------


def snapshot_repository(dest: Path) -> Path:
    """The working tree's files (tracked and new, not ignored), taken once: every team
    copies this snapshot, so edits made to the checkout meanwhile cannot split them."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    dest.mkdir(parents=True)
    for rel in filter(None, files):
        src = ROOT / os.fsdecode(rel)
        if not src.is_file() or src.is_symlink():
            continue
        out = dest / os.fsdecode(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(src.read_bytes())
        out.chmod(src.stat().st_mode & 0o777)
    return dest


@dataclass(frozen=True)
class Built:
    ws: Path
    base: Path
    log: str
    executed: list[tuple[str, str, str]]
    """(owner, mnemonic, first output) of every action that ran, from --explain."""
    summary: tuple[int, int, int]
    """(actions, executed, cache hits)."""
    cas: frozenset[str] = frozenset()
    """The server's blobs right after this build (team A only)."""

    @property
    def bin(self) -> Path:
        (found,) = self.base.glob(f"execroot/*/{BIN}")
        return found


def strata_build(ws: Path, base: Path, *flags: str, check: bool = True) -> Built:
    proc = subprocess.run(
        [str(STRATA), "build", "--explain", f"--output_base={base}", *flags, "//examples/..."],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    m = _SUMMARY.search(proc.stderr)
    assert m, proc.stderr[-2000:]
    summary = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    executed = [(o, mn, f) for o, mn, f in _EXPLAIN.findall(proc.stderr)]
    assert len(executed) == summary[1], proc.stderr[-2000:]
    return Built(ws, base, proc.stderr, executed, summary)


def outputs(built: Built) -> dict[str, str]:
    """Every file and symlink the examples left, tree artifacts included, by digest or target."""
    root = built.bin / "examples"
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if ".runfiles" in rel:
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _same_files_fewer(got: dict[str, str], team_a: dict[str, str]) -> None:
    """Every file a team B build has is team A's; the asked-for ones are there (each
    image's record, the examples' default outputs), intermediates left remote are not."""
    assert {k: team_a.get(k) for k in got} == got
    assert "layered/layered.image.json" in got and "hello/hello.image.json" in got
    # nothing reads the nix-db image's layout: its own layers stay on the server
    for name in ("nix-db/nix-db.custom.tar", "nix-db/nix-db.nixdb.tar"):
        assert name in team_a and name not in got


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rc-examples")


@pytest.fixture(scope="module")
def snapshot(work: Path) -> Path:
    return snapshot_repository(work / "snapshot")


@pytest.fixture(scope="module")
def copy_repository(snapshot: Path) -> Callable[[Path], Path]:
    """A fresh clone in `dest`: the same files as every other team's."""

    def copy(dest: Path) -> Path:
        shutil.copytree(snapshot, dest, symlinks=True)
        return dest

    return copy


@pytest.fixture(scope="module")
def nginx(work: Path) -> Iterator[NginxCache]:
    server = NginxCache(work / "nginx")
    server.start(need("nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def team_a(work: Path, nginx: NginxCache, copy_repository: Callable[[Path], Path]) -> Built:
    built = strata_build(
        copy_repository(work / "team-a"), work / "out-a", f"--remote_cache={nginx.url}/teams"
    )
    assert "warning" not in built.log
    assert built.summary[1] > 50  # everything ran: the server was empty
    return dataclasses.replace(built, cas=frozenset(nginx.entries("cas")))


@pytest.mark.realtool
def test_team_b_runs_only_the_whole_image_actions(
    team_a: Built, nginx: NginxCache, work: Path, copy_repository: Callable[[Path], Path]
) -> None:
    cas = team_a.cas
    # the policy: layer blobs are on the server, whole images are not
    layered = team_a.bin / "examples" / "layered"
    assert hashlib.sha256((layered / "layered.tar").read_bytes()).hexdigest() not in cas
    layer_blobs = sorted((team_a.bin / "examples").glob("*/*.layer.tar"))
    assert layer_blobs
    for blob in layer_blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() in cas, blob

    b = strata_build(
        copy_repository(work / "team-b"), work / "out-b", f"--remote_cache={nginx.url}/teams"
    )
    assert "warning" not in b.log
    ran = {mnemonic for _owner, mnemonic, _out in b.executed}
    assert ran and ran <= IMAGE_MNEMONICS, b.executed
    assert not ran & SHARED_MNEMONICS
    # The records of layered and docker images (digests only) come from the server.
    records = ("/hello/hello.image.json", "/layered/layered.image.json")
    assert not [f for _o, _m, f in b.executed if f.endswith(records)]
    assert b.summary[2] == team_a.summary[1] - b.summary[1]
    assert f"remote cache: {b.summary[2]} hits" in b.log
    _same_files_fewer(outputs(b), outputs(team_a))


@pytest.mark.realtool
def test_images_uploaded_when_the_policy_is_off_and_a_fresh_clone_runs_nothing(
    team_a: Built, nginx: NginxCache, work: Path, copy_repository: Callable[[Path], Path]
) -> None:
    url = f"--remote_cache={nginx.url}/teams"
    # Team A again, from a fresh output base: its layers come from the server, its
    # image actions run and, with the policy off, are uploaded.
    a2 = strata_build(team_a.ws, work / "out-a2", url, POLICY_OFF)
    assert {m for _o, m, _f in a2.executed} <= IMAGE_MNEMONICS
    cas = set(nginx.entries("cas"))
    layered = a2.bin / "examples" / "layered" / "layered.tar"
    assert hashlib.sha256(layered.read_bytes()).hexdigest() in cas

    c = strata_build(copy_repository(work / "team-c"), work / "out-c", url, POLICY_OFF)
    assert c.summary[1] == 0 and c.executed == []
    assert c.summary[2] == team_a.summary[1]
    _same_files_fewer(outputs(c), outputs(team_a))


@pytest.mark.realtool
def test_server_stopped_mid_build_warns_once_and_the_build_completes(
    team_a: Built, work: Path, copy_repository: Callable[[Path], Path]
) -> None:
    server = NginxCache(work / "nginx-dying")
    server.start(need("nginx"))
    ws = copy_repository(work / "team-d")
    cmd = [
        str(STRATA),
        "build",
        f"--output_base={work / 'out-d'}",
        f"--remote_cache={server.url}",
        "//examples/...",
    ]
    proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # stop the server once the build has stored its first result there
        while proc.poll() is None and not any(
            r.startswith("PUT ") and "/ac/" in r for r in server.requests()
        ):
            time.sleep(0.2)
        assert proc.poll() is None, "the build ended before the server could be stopped"
        server.stop()
        _out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    assert proc.returncode == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings
    assert "continuing without the remote cache" in warnings[0]
    d = Built(ws, work / "out-d", err, [], (0, 0, 0))
    assert outputs(d) == outputs(team_a)


# -- real Bazel 4.2.3 on the same server -------------------------------------------

_BAZEL_HITS = re.compile(r"(\d+) remote cache hit")
HOST_TOOL = "bazel-out/host/bin/external/strata_tools/strata"


@pytest.mark.realtool
def test_bazel_hits_the_server_twice_and_shares_layer_blobs_with_strata(
    team_a: Built, nginx: NginxCache, work: Path, copy_repository: Callable[[Path], Path]
) -> None:
    from strata.engine.cache import reapi

    ws = copy_repository(work / "bazel-ws")
    root = work / "bazel-root"
    flags = (
        "--symlink_prefix=/",
        "--spawn_strategy=processwrapper-sandbox",
        f"--remote_cache={nginx.url}/teams",
    )
    before = set(nginx.entries("ac"))
    bazel(ws, root, "build", *flags, "//examples/...")
    bazel_ac = set(nginx.entries("ac")) - before
    bazel(ws, root, "clean")
    built = bazel(ws, root, "build", *flags, "//examples/...")
    out = built.stdout + built.stderr
    m = _BAZEL_HITS.search(out)
    assert m, out[-2000:]
    # after the clean, every action Bazel may cache remotely comes from the server
    assert int(m.group(1)) == len(bazel_ac) > 0
    info = bazel(ws, root, "info", "--symlink_prefix=/", "bazel-bin").stdout.splitlines()
    (bazel_bin,) = [Path(line) for line in info if line.startswith("/") and line.endswith("/bin")]

    # Shared CAS: each store path's layer Bazel made is the blob strata uploaded.
    layers = sorted((bazel_bin / "examples").glob("*/*.layer.tar"))
    assert layers
    for layer in layers:
        assert hashlib.sha256(layer.read_bytes()).hexdigest() in team_a.cas, layer

    # Shared AC: Bazel stores each Action and Command in the CAS. Its strata-tool
    # actions run the tool from the host configuration, as strata's engine does.
    cas = nginx.cache_dir / "teams" / "cas"
    argv0 = {}
    for key in bazel_ac:
        action = reapi.Action.FromString((cas / key).read_bytes())
        command = reapi.Command.FromString((cas / action.command_digest.hash).read_bytes())
        argv0[key] = command.arguments[0]
    rule_actions = [k for k, a in argv0.items() if a == HOST_TOOL]
    # The rest are genrules: Bazel's source its @bazel_tools setup script, strata's do not.
    assert set(argv0.values()) == {HOST_TOOL, "/bin/bash"}
    assert rule_actions

    shared = strata_build(
        copy_repository(work / "reapi-ws"),
        work / "out-reapi",
        f"--remote_cache={nginx.url}/teams",
        "--action_keys=reapi",
        "--noremote_upload_local_results",
    )
    hits = re.search(r"remote cache: (\d+) hits", shared.log)
    assert hits
    print(
        f"Bazel AC entries: {len(bazel_ac)}; strata --action_keys=reapi hits on them: "
        f"{hits.group(1)}; of them the rules' actions: {len(rule_actions)}"
    )
    # Every action of the rules Bazel stored is a hit for strata; only genrules run.
    assert int(hits.group(1)) == len(rule_actions)
    ran = {mnemonic for _, mnemonic, _ in shared.executed}
    assert ran <= IMAGE_MNEMONICS | {"Genrule"}, ran
