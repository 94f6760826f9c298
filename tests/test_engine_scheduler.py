from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from enginekit import BIN, Engine, chain, chain_engine, sh
from strata.engine.action import Action
from strata.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def eng(tmp_path: Path) -> Engine:
    return chain_engine(tmp_path)


def test_builds_and_second_build_executes_nothing(eng: Engine) -> None:
    stats = eng.build(chain())
    assert (stats.executed, stats.cache_hits) == (3, 0)
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nBETA\n"
    assert (eng.workspace / "strata-bin" / "pkg" / "C").read_text() == "ALPHA\nBETA\n"
    stats = eng.build(chain())
    assert (stats.total, stats.executed, stats.cache_hits) == (3, 0, 3)
    assert eng.log[-1].strip().endswith("3 actions: 0 executed, 3 cache hits")


def test_touch_without_change_executes_nothing(eng: Engine) -> None:
    eng.build(chain())
    src = eng.workspace / "pkg" / "a.txt"
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    assert eng.build(chain()).executed == 0


def test_changed_input_reruns_exactly_dependents_and_explains(eng: Engine) -> None:
    eng.build(chain())
    (eng.workspace / "pkg" / "b.txt").write_text("gamma\n")
    stats = eng.build(chain(), explain=True)
    assert sorted(stats.executed_labels) == ["//pkg:b Genrule", "//pkg:c Genrule"]
    assert stats.cache_hits == 1
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nGAMMA\n"
    log = eng.log[-1]
    assert f"explain: //pkg:b Genrule {BIN}/pkg/B: input pkg/b.txt changed" in log
    assert f"explain: //pkg:c Genrule {BIN}/pkg/C: input {BIN}/pkg/B changed" in log
    assert "//pkg:a" not in log


def test_explain_reports_argv_and_env_changes(eng: Engine) -> None:
    a = sh("//pkg:a", f"echo 1 > {BIN}/pkg/o", [], [f"{BIN}/pkg/o"], env=(("X", "1"),))
    eng.build([a], explain=True)
    assert "no cache entry and no earlier run recorded" in eng.log[-1]
    b = sh("//pkg:a", f"echo 2 > {BIN}/pkg/o", [], [f"{BIN}/pkg/o"], env=(("X", "2"),))
    eng.build([b], explain=True)
    assert "command line changed; environment changed: X" in eng.log[-1]


def test_reverting_an_input_is_a_cache_hit(eng: Engine) -> None:
    eng.build(chain())
    src = eng.workspace / "pkg" / "a.txt"
    src.write_text("other\n")
    assert eng.build(chain()).executed == 2
    src.write_text("alpha\n")
    stats = eng.build(chain())
    assert (stats.executed, stats.cache_hits) == (0, 3)
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nBETA\n"


def test_deleted_output_is_restored_from_cache(eng: Engine) -> None:
    eng.build(chain())
    eng.out(f"{BIN}/pkg/C").unlink()
    stats = eng.build(chain())
    assert (stats.executed, stats.cache_hits) == (0, 3)
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nBETA\n"


def test_corrupted_cas_entry_is_detected_and_the_action_reruns(eng: Engine) -> None:
    eng.build(chain())
    c = eng.out(f"{BIN}/pkg/C")
    import hashlib

    sha = hashlib.sha256(c.read_bytes()).hexdigest()
    blob = eng.output_base / "cache" / "cas" / sha[:2] / sha
    assert blob.read_text() == "ALPHA\nBETA\n"
    blob.chmod(0o644)
    blob.write_text("ALPHA\nBOGUS\n")
    c.unlink()
    stats = eng.build(chain(), explain=True)
    assert stats.executed_labels == ["//pkg:c Genrule"]
    assert c.read_text() == "ALPHA\nBETA\n"
    log = eng.log[-1]
    assert log.count("warning:") == 1
    assert f"ignored an invalid action result for //pkg:c (blob {sha} does not match" in log
    assert f"explain: //pkg:c Genrule {BIN}/pkg/C: the disk cache" in log
    assert "1 invalid cache entries ignored" in log
    assert blob.read_text() == "ALPHA\nBETA\n"


def test_missing_output_names_owner_mnemonic_and_path(eng: Engine) -> None:
    a = sh("//pkg:lazy", f"touch {BIN}/pkg/one", [], [f"{BIN}/pkg/one", f"{BIN}/pkg/two"])
    with pytest.raises(UserError) as info:
        eng.build([a])
    assert str(info.value) == (
        f"//pkg:lazy: Genrule did not create declared output {BIN}/pkg/two (got missing); "
        "make the command write every file the rule declares"
    )
    assert not eng.out(f"{BIN}/pkg/one").exists()


def test_failing_action_shows_label_mnemonic_command_and_stderr(eng: Engine) -> None:
    a = sh("//pkg:bad", "echo something broke >&2; exit 3", [], [f"{BIN}/pkg/x"], mnemonic="Boom")
    with pytest.raises(UserError) as info:
        eng.build([a])
    assert str(info.value) == (
        "//pkg:bad: Boom failed with exit status 3 (got command: "
        "/bin/sh -c 'echo something broke >&2; exit 3'); see the action's output below\n"
        "something broke"
    )


def test_failure_stops_the_build_unless_keep_going(eng: Engine) -> None:
    bad = sh("//pkg:bad", "exit 1", [], [f"{BIN}/pkg/x"])
    after = sh("//pkg:after", f"cp {BIN}/pkg/x {BIN}/pkg/y", [f"{BIN}/pkg/x"], [f"{BIN}/pkg/y"])
    good = sh("//pkg:good", f"echo ok > {BIN}/pkg/g", [], [f"{BIN}/pkg/g"])
    with pytest.raises(UserError, match="build did not complete \\(got 1 failed actions\\)"):
        eng.build([bad, after, good], jobs=1, keep_going=True)
    assert eng.out(f"{BIN}/pkg/g").read_text() == "ok\n"
    assert not eng.out(f"{BIN}/pkg/y").exists()
    assert "error: //pkg:bad: Genrule failed with exit status 1" in eng.log[-1]


def test_sandbox_has_only_declared_inputs_and_a_scrubbed_env(eng: Engine, tmp_path: Path) -> None:
    stray = tmp_path / "stray-marker"
    script = (
        f"ls -R pkg > {BIN}/pkg/seen; env | sort > {BIN}/pkg/env; "
        f"echo junk > junk.txt; mkdir -p {BIN}/pkg && echo x > {BIN}/pkg/undeclared"
    )
    a = sh(
        "//pkg:s",
        script,
        ["pkg/a.txt"],
        [f"{BIN}/pkg/seen", f"{BIN}/pkg/env"],
        env=(("LANG", "C"),),
    )
    eng.build([a])
    assert eng.out(f"{BIN}/pkg/seen").read_text().split() == ["pkg:", "a.txt"]
    env = dict(line.split("=", 1) for line in eng.out(f"{BIN}/pkg/env").read_text().splitlines())
    assert env["LANG"] == "C"
    # exactly the declared environment, as under Bazel: not even PATH (the shell's
    # own default still finds `env`)
    assert "PATH" not in env and "HOME" not in env and "PYTHONPATH" not in env
    assert not eng.out("junk.txt").exists()
    assert not eng.out(f"{BIN}/pkg/undeclared").exists()
    assert not stray.exists()
    assert list((eng.output_base / "sandbox").iterdir()) == []


def test_independent_actions_run_in_parallel(eng: Engine, tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()

    def waiter(me: str, other: str) -> Action:
        script = (
            f"touch {meet}/{me}; i=0; while [ ! -e {meet}/{other} ] && [ $i -lt 300 ]; "
            f"do sleep 0.05; i=$((i+1)); done; test -e {meet}/{other} && echo {me} > {BIN}/{me}"
        )
        return sh(f"//:{me}", script, [], [f"{BIN}/{me}"])

    # They meet in a directory outside the build, which only the directory sandbox allows.
    stats = eng.build([waiter("p", "q"), waiter("q", "p")], jobs=2, sandbox="directory")
    assert stats.executed == 2


def test_tree_artifacts_and_in_process_actions(eng: Engine) -> None:
    tree = f"{BIN}/pkg/tree"
    actions = [
        Action(
            owner="//pkg:w",
            mnemonic="FileWrite",
            progress_message="",
            kind="write",
            outputs=(f"{BIN}/pkg/list",),
            content=b"x y z\n",
        ),
        sh(
            "//pkg:t",
            f"for n in $(cat {BIN}/pkg/list); do echo $n > {tree}/$n; done",
            [f"{BIN}/pkg/list"],
            [],
            output_dirs=(tree,),
        ),
        sh(
            "//pkg:u",
            f"ls {tree} > {BIN}/pkg/ls; cat {tree}/y >> {BIN}/pkg/ls",
            [tree],
            [f"{BIN}/pkg/ls"],
        ),
        Action(
            owner="//pkg:l",
            mnemonic="Symlink",
            progress_message="",
            kind="symlink",
            outputs=(f"{BIN}/pkg/link",),
            symlink_target=f"{BIN}/pkg/ls",
        ),
    ]
    stats = eng.build(actions)
    assert (stats.executed, stats.in_process) == (2, 2)
    assert eng.out(f"{BIN}/pkg/link").read_text() == "x\ny\nz\ny\n"
    import shutil

    shutil.rmtree(eng.out(tree))
    stats = eng.build(actions)
    assert (stats.executed, stats.cache_hits) == (0, 2)
    assert sorted(p.name for p in eng.out(tree).iterdir()) == ["x", "y", "z"]


DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from enginekit import BIN, Engine, chain, chain_engine, sh
    ws, ob, cache = map(Path, sys.argv[1:4])
    actions = [
        sh(f"//:{i}", f"head -c 200000 /dev/zero | tr '\\\\0' {i % 10} > {BIN}/o{i}", [],
           [f"{BIN}/o{i}"])
        for i in range(12)
    ]
    actions.append(sh("//:all", f"cat {BIN}/o* > {BIN}/all",
                      [f"{BIN}/o{i}" for i in range(12)], [f"{BIN}/all"]))
    stats = Engine(ws, ob, cache).build(actions, jobs=2)
    print(stats.executed + stats.cache_hits)
    """
)


def test_two_concurrent_builds_share_one_cache(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    cache = tmp_path / "shared-cache"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(driver),
                str(ws),
                str(tmp_path / f"ob{n}"),
                str(cache),
                str(ROOT / "tests"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "13"
    for n in range(2):
        data = (tmp_path / f"ob{n}" / "execroot" / "__main__" / BIN / "all").read_bytes()
        assert len(data) == 12 * 200000
    third = Engine(ws, tmp_path / "ob3", cache).build([], [])
    assert third.total == 0
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def _stamp(tag: tuple[str, ...]) -> list[Action]:
    """An action whose output differs at every run (like an image created "now"), and a reader."""
    return [
        sh(
            "//pkg:stamp",
            f"cat /proc/sys/kernel/random/uuid pkg/a.txt > {BIN}/pkg/stamp",
            ["pkg/a.txt"],
            [f"{BIN}/pkg/stamp"],
            tags=tag,
        ),
        sh(
            "//pkg:use",
            f"cp {BIN}/pkg/stamp {BIN}/pkg/use",
            [f"{BIN}/pkg/stamp"],
            [f"{BIN}/pkg/use"],
        ),
    ]


def test_no_cache_action_is_never_cached_but_up_to_date_until_clean(eng: Engine) -> None:
    """As Bazel 4.2.3 does for `no-cache`: no disk or remote cache entry, no rerun on a no-op."""
    stats = eng.build(_stamp(("no-cache",)))
    assert (stats.executed, stats.cache_hits, stats.up_to_date) == (2, 0, 0)
    first = eng.out(f"{BIN}/pkg/stamp").read_text()
    ac = list((eng.output_base / "cache" / "ac").rglob("*"))
    assert len([p for p in ac if p.is_file()]) == 1  # only //pkg:use's

    stats = eng.build(_stamp(("no-cache",)))
    assert (stats.executed, stats.cache_hits, stats.up_to_date) == (0, 1, 1)
    assert eng.log[-1].strip().endswith("2 actions: 0 executed, 1 cache hits, 1 up to date")
    assert eng.out(f"{BIN}/pkg/stamp").read_text() == first

    # Outputs changed or gone: it runs again (and what reads it too).
    eng.out(f"{BIN}/pkg/stamp").unlink()
    stats = eng.build(_stamp(("no-cache",)), explain=True)
    assert stats.executed == 2
    assert (
        f"explain: //pkg:stamp Genrule {BIN}/pkg/stamp: caching is off for this action "
        "(no-cache tag or no cache); no earlier run with its outputs in place"
    ) in eng.log[-1]
    second = eng.out(f"{BIN}/pkg/stamp").read_text()
    assert second != first
    assert eng.out(f"{BIN}/pkg/use").read_text() == second

    # A changed input: it runs again, and says why.
    (eng.workspace / "pkg" / "a.txt").write_text("changed\n")
    eng.build(_stamp(("no-cache",)), explain=True)
    assert "(no-cache tag or no cache); input pkg/a.txt changed" in eng.log[-1]
    (eng.workspace / "pkg" / "a.txt").write_text("alpha\n")

    # After `strata clean` the disk cache is kept, but nothing in it stands for this action.
    eng.build(_stamp(("no-cache",)))
    before = eng.out(f"{BIN}/pkg/stamp").read_text()
    eng.base.clean(expunge=False)
    stats = eng.build(_stamp(("no-cache",)))
    assert stats.executed == 2
    assert eng.out(f"{BIN}/pkg/stamp").read_text() not in (before, first, second)


def test_a_cached_action_comes_back_from_the_disk_cache_after_clean(eng: Engine) -> None:
    """The contrast: without `no-cache`, a clean build returns the stored output."""
    eng.build(_stamp(()))
    first = eng.out(f"{BIN}/pkg/stamp").read_text()
    eng.base.clean(expunge=False)
    stats = eng.build(_stamp(()))
    assert (stats.executed, stats.cache_hits) == (0, 2)
    assert eng.out(f"{BIN}/pkg/stamp").read_text() == first


def test_sources_go_to_the_digest_threads_in_batches_and_large_actions_alone(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strata.engine.execution import source_digests

    monkeypatch.setattr(source_digests, "_BATCH", 4)
    big = [f"pkg/big{i}.txt" for i in range(6)]
    for p in big + [f"pkg/s{i}.txt" for i in range(5)]:
        (eng.workspace / p).write_text(p + "\n")
    small = [
        sh(
            f"//pkg:s{i}",
            f"cat pkg/s{i}.txt > {BIN}/pkg/S{i}",
            [f"pkg/s{i}.txt"],
            [f"{BIN}/pkg/S{i}"],
        )
        for i in range(5)
    ]
    large = sh("//pkg:big", f"cat {' '.join(big)} > {BIN}/pkg/BIG", big, [f"{BIN}/pkg/BIG"])
    tasks: list[tuple[list[int], list[str]]] = []
    real = source_digests.SourceDigests.submit

    def noted(self: source_digests.SourceDigests, indexes: list[int], paths: list[str]) -> None:
        tasks.append((list(indexes), list(paths)))
        real(self, indexes, paths)

    monkeypatch.setattr(source_digests.SourceDigests, "submit", noted)
    stats = eng.build([*small, large])
    assert stats.executed == 6
    assert eng.out(f"{BIN}/pkg/BIG").read_text() == "".join(p + "\n" for p in big)
    # four small actions, then the last small one, then the large one
    assert [len(i) for i, _ in tasks] == [4, 1, 1]
    assert [p for _, paths in tasks for p in paths].count("pkg/big0.txt") == 1
    assert ([5], big) in tasks
