from __future__ import annotations

from pathlib import Path

import pytest

from strata.engine.loading.rcfile import rc_args, read_rc
from strata.errors import UsageError


def test_bazelrc_contributes_only_shared_build_flags(tmp_path: Path) -> None:
    (tmp_path / ".bazelrc").write_text(
        "# team defaults\n"
        "build --jobs 3 --remote_cache=grpc://x --keep_going\n"
        "build:ci --jobs=64\n"
        "test --verbose_failures\n"
        "common --disk_cache=/tmp/dc --announce_rc\n"
        "startup --output_user_root=/x\n"
    )
    assert rc_args(tmp_path, "build") == ["--jobs=3", "--keep_going", "--disk_cache=/tmp/dc"]
    assert rc_args(tmp_path, "run") == ["--jobs=3", "--keep_going", "--disk_cache=/tmp/dc"]
    # `test` takes `build` lines too, as in Bazel; `query` has none of these flags.
    assert rc_args(tmp_path, "test") == [
        "--jobs=3",
        "--keep_going",
        "--verbose_failures",
        "--disk_cache=/tmp/dc",
    ]
    assert rc_args(tmp_path, "query") == []


def test_test_flags_apply_to_test_only(tmp_path: Path) -> None:
    (tmp_path / ".bazelrc").write_text(
        "build --test_output=errors\ntest --nocache_test_results --test_env=A=1\n"
    )
    (tmp_path / ".strata.rc").write_text("test --cache_test_results --test_timeout 5\n")
    assert rc_args(tmp_path, "build") == []
    assert rc_args(tmp_path, "test") == [
        "--test_output=errors",
        "--cache_test_results=no",
        "--test_env=A=1",
        "--cache_test_results=yes",
        "--test_timeout=5",
    ]


def test_output_groups_from_bazelrc_add_up_with_the_command_line(tmp_path: Path) -> None:
    # Bazel's flag may be repeated; rc values come first, and all form one list.
    (tmp_path / ".bazelrc").write_text("build --output_groups=+tarball\n")
    (tmp_path / ".strata.rc").write_text("build --output_groups -layers\n")
    assert rc_args(tmp_path, "build") == ["--output_groups=+tarball", "--output_groups=-layers"]
    from strata.cli import build_parser

    args = build_parser().parse_args(["build", *rc_args(tmp_path, "build"), "--output_groups=+oci"])
    assert args.output_groups == ["+tarball", "-layers", "+oci"]


def test_strata_rc_wins_over_bazelrc_and_accepts_negation(tmp_path: Path) -> None:
    (tmp_path / ".bazelrc").write_text("build --keep_going --jobs=2\n")
    (tmp_path / ".strata.rc").write_text("build --nokeep_going --explain --jobs=5\n")
    assert rc_args(tmp_path, "build") == [
        "--keep_going",
        "--jobs=2",
        "--nokeep_going",
        "--explain",
        "--jobs=5",
    ]


def test_unknown_flag_in_strata_rc_names_file_and_line(tmp_path: Path) -> None:
    rc = tmp_path / ".strata.rc"
    rc.write_text("build --jobs=2\nbuild --remote_executor=x\n")
    with pytest.raises(UsageError) as info:  # exit 2, Bazel's words
        read_rc(rc, "build", strict=True)
    assert str(info.value) == (
        f"{rc}:2: --remote_executor=x :: Unrecognized option: --remote_executor=x"
    )


def test_missing_value_is_an_error(tmp_path: Path) -> None:
    rc = tmp_path / ".strata.rc"
    rc.write_text("build --jobs\n")
    with pytest.raises(UsageError, match=r":1: Expected value after --jobs$"):
        read_rc(rc, "build", strict=True)


def test_build_setting_flags_pass_through_for_build_commands(tmp_path: Path) -> None:
    (tmp_path / ".bazelrc").write_text("build --//settings:color=blue --jobs=2\n")
    (tmp_path / ".strata.rc").write_text("build --no//settings:loud --@r//p:x=1\n")
    assert rc_args(tmp_path, "build") == [
        "--//settings:color=blue",
        "--jobs=2",
        "--no//settings:loud",
        "--@r//p:x=1",
    ]
    (tmp_path / ".strata.rc").write_text("common --//settings:color=red\n")
    with pytest.raises(UsageError, match="Unrecognized option: --//settings:color=red"):
        rc_args(tmp_path, "query")  # query takes no build settings
