from __future__ import annotations

import datetime as dt

import pytest

from strata.errors import UserError
from strata.oci.config import (
    DEFAULT_CREATED,
    build_config,
    created_epoch,
    merge_config,
    merge_env,
    parse_created,
    validate_config,
)
from strata.oci.platform import parse_platform


def test_sets_accept_lists_and_objects() -> None:
    got = validate_config({"ExposedPorts": ["8080/tcp", "53/udp"], "Volumes": {"/data": {}}}, "w")
    assert got == {"ExposedPorts": {"53/udp": {}, "8080/tcp": {}}, "Volumes": {"/data": {}}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"Foo": 1},
            "w: unknown config field (got 'Foo'); allowed fields: Cmd, Entrypoint, Env, "
            "ExposedPorts, Labels, StopSignal, User, Volumes, WorkingDir",
        ),
        ({"Cmd": "/bin/sh"}, "w: config Cmd must be a list of strings (got '/bin/sh')"),
        ({"Entrypoint": [1]}, "w: config Entrypoint must be a list of strings (got [1])"),
        ({"Env": ["=x"]}, "w: config Env entries must be KEY=VALUE (got '=x')"),
        ({"Labels": {"a": 1}}, "w: config Labels must map strings to strings (got {'a': 1})"),
        ({"ExposedPorts": ["http"]}, "w: config ExposedPorts entries must be PORT[/tcp|udp|sctp]"),
        ({"Volumes": {"/x": {"a": 1}}}, "w: config Volumes values must be empty objects"),
        ({"User": 0}, "w: config User must be a string (got 0)"),
    ],
)
def test_bad_fields(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as e:
        validate_config(fields, "w")
    assert str(e.value).startswith(message)


def test_env_last_wins_keeping_first_position() -> None:
    assert merge_env(["PATH=/bin", "A=1", "B=2"], ["A=3", "C=4", "PATH=/usr/bin"]) == [
        "PATH=/usr/bin",
        "A=3",
        "B=2",
        "C=4",
    ]
    assert validate_config({"Env": ["X=1", "X=2"]}, "w") == {"Env": ["X=2"]}


def test_merge_field_by_field() -> None:
    base = {
        "Cmd": ["/bin/sh"],
        "Env": ["PATH=/bin", "A=1"],
        "Labels": {"a": "1", "b": "2"},
        "WorkingDir": "/",
        "ExposedPorts": {"80/tcp": {}},
    }
    got = merge_config(
        base, {"Env": ["A=2"], "Labels": {"b": "3"}, "ExposedPorts": {"443/tcp": {}}}
    )
    assert got == {
        "Cmd": ["/bin/sh"],
        "Env": ["PATH=/bin", "A=2"],
        "Labels": {"a": "1", "b": "3"},
        "WorkingDir": "/",
        "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
    }


def test_entrypoint_drops_base_cmd() -> None:
    assert merge_config({"Cmd": ["bash"]}, {"Entrypoint": ["/app"]}) == {"Entrypoint": ["/app"]}
    assert merge_config({"Cmd": ["bash"]}, {"Entrypoint": ["/app"], "Cmd": ["-v"]}) == {
        "Cmd": ["-v"],
        "Entrypoint": ["/app"],
    }


def test_created() -> None:
    assert parse_created(None) == (DEFAULT_CREATED, [])
    assert parse_created("2024-02-29T12:00:00+01:00") == ("2024-02-29T12:00:00+01:00", [])
    now = dt.datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    value, warnings = parse_created("now", now=now)
    assert value == "2025-05-06T07:08:09Z"
    assert len(warnings) == 1 and f'default "{DEFAULT_CREATED}"' in warnings[0]
    with pytest.raises(
        UserError, match=r"created is not a real date \(got '2023-02-30T00:00:00Z'\)"
    ):
        parse_created("2023-02-30T00:00:00Z")
    assert created_epoch(DEFAULT_CREATED) == 1
    assert created_epoch("2024-01-01T00:00:00.5Z") == 1704067200


def test_build_config_history_and_diff_ids() -> None:
    base = {"config": {"Env": ["A=1"]}, "history": [{"created_by": "base"}]}
    cfg = build_config(
        platform=parse_platform("armv7l"),
        created=DEFAULT_CREATED,
        fields={"Env": ["B=2"]},
        diff_ids=["sha256:" + "a" * 64, "sha256:" + "b" * 64],
        base=base,
        new_layers=1,
    )
    assert cfg == {
        "architecture": "arm",
        "variant": "v7",
        "os": "linux",
        "created": DEFAULT_CREATED,
        "config": {"Env": ["A=1", "B=2"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
        "history": [
            {"created_by": "base"},
            {"created": DEFAULT_CREATED, "created_by": "strata"},
        ],
    }
