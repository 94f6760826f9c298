from __future__ import annotations

from pathlib import Path

import pytest

from strata.engine.rcfile import rc_args, read_rc
from strata.errors import UserError


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
    assert rc_args(tmp_path, "query") == ["--disk_cache=/tmp/dc"]


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
    with pytest.raises(UserError) as info:
        read_rc(rc, "build", strict=True)
    assert str(info.value) == (
        f"{rc}:2: unknown flag (got '--remote_executor=x'); strata knows "
        "--action_keys, --disk_cache, --explain, --jobs, --keep_going, --remote_accept_cached, "
        "--remote_cache, --remote_header, --remote_max_connections, --remote_timeout, "
        "--remote_upload_local_results, --sandbox, --verbose_failures"
    )


def test_missing_value_is_an_error(tmp_path: Path) -> None:
    rc = tmp_path / ".strata.rc"
    rc.write_text("build --jobs\n")
    with pytest.raises(UserError, match=r":1: flag needs a value \(got '--jobs'"):
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
    with pytest.raises(UserError, match="unknown flag"):
        rc_args(tmp_path, "query")  # query takes no build settings
