"""The typed request base (`strata.actions.request.Request`): keys, JSON types,
defaults and the exact one-line errors an action's `from_json` raises."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest

from strata.actions import ACTIONS
from strata.actions.request import (
    OWNERSHIP_KEYS,
    SCHEMA_VERSION,
    Request,
    base_blobs,
    json_kind,
    ownership,
    read_with,
)
from strata.errors import UserError
from strata.oci.layer import Ownership


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample(Request):
    name: str
    count: int = 3
    verify: bool = True
    ratio: float = 0.5
    items: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    tag: str | None = None
    base_blobs: list[Path] = read_with(base_blobs)


def _error(req: dict[str, Any]) -> str:
    with pytest.raises(UserError) as e:
        Sample.from_json(req, "req.json")
    return str(e.value)


def test_defaults_fill_absent_keys() -> None:
    got = Sample.from_json({"name": "n", "schema_version": 1}, "req.json")
    assert got == Sample(name="n", base_blobs=[])
    assert (got.count, got.verify, got.ratio, got.items, got.env, got.tag) == (
        3,
        True,
        0.5,
        [],
        {},
        None,
    )
    assert Sample.schema_version == SCHEMA_VERSION == 1


def test_given_values_are_read() -> None:
    req = {
        "name": "n",
        "count": 7,
        "verify": False,
        "ratio": 2.5,
        "items": ["a"],
        "env": {"K": "V"},
        "tag": "t",
        "base_blobs": ["d"],
    }
    got = Sample.from_json(req, "req.json")
    assert got == Sample(
        name="n",
        count=7,
        verify=False,
        ratio=2.5,
        items=["a"],
        env={"K": "V"},
        tag="t",
        base_blobs=[Path("d")],
    )


def test_default_lists_are_not_shared() -> None:
    a = Sample.from_json({"name": "a"}, "w")
    b = Sample.from_json({"name": "b"}, "w")
    assert a.items is not b.items


def test_optional_none_is_accepted() -> None:
    assert Sample.from_json({"name": "n", "tag": None}, "w").tag is None


def test_unknown_key_names_the_allowed_ones() -> None:
    assert _error({"name": "n", "colour": 1}) == (
        "req.json: unknown request key (got 'colour'); allowed keys: "
        "base_blobs, count, env, items, name, ratio, schema_version, tag, verify"
    )


def test_missing_required_key() -> None:
    assert _error({"count": 1}) == "req.json: missing required key 'name'"


@pytest.mark.parametrize(
    ("req", "message"),
    [
        ({"name": 1}, "key 'name' must be str (got 1)"),
        ({"name": "n", "count": True}, "key 'count' must be int (got true)"),
        ({"name": "n", "count": "3"}, "key 'count' must be int (got \"3\")"),
        ({"name": "n", "verify": 1}, "key 'verify' must be bool (got 1)"),
        ({"name": "n", "items": "a"}, "key 'items' must be list (got \"a\")"),
        ({"name": "n", "env": []}, "key 'env' must be dict (got [])"),
        ({"name": "n", "tag": 5}, "key 'tag' must be str or NoneType (got 5)"),
    ],
)
def test_wrong_type(req: dict[str, Any], message: str) -> None:
    assert _error(req) == f"req.json: {message}"


def test_custom_reader_keeps_its_own_message() -> None:
    assert _error({"name": "n", "base_blobs": "d"}) == (
        "req.json: base_blobs must be a list of directory paths (got d); "
        "pass the BaseBlobs outputs of the image's shallow bases"
    )


def test_keys_are_checked_before_fields_are_read() -> None:
    assert "unknown request key (got 'x')" in _error({"name": 1, "x": 0})


def test_fields_are_read_in_declaration_order() -> None:
    assert _error({"count": "3"}) == "req.json: missing required key 'name'"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Labelled(Request):
    where_key = "label"
    label: str = ""
    image: str


def test_a_label_names_the_keys_read_after_it() -> None:
    with pytest.raises(UserError) as e:
        Labelled.from_json({"label": "//app:load"}, "req.json")
    assert str(e.value) == "//app:load: missing required key 'image'"
    with pytest.raises(UserError) as e:
        Labelled.from_json({"label": ""}, "req.json")
    assert str(e.value) == "req.json: missing required key 'image'"
    with pytest.raises(UserError) as e:
        Labelled.from_json({"label": 1, "image": "i"}, "req.json")
    assert str(e.value) == "req.json: key 'label' must be str (got 1)"
    assert Labelled.keys() == {"image", "label", "schema_version"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Owned(Request):
    output: str
    owner: Ownership = read_with(ownership, keys=OWNERSHIP_KEYS)


def test_a_reader_of_several_keys_allows_them_all() -> None:
    got = Owned.from_json({"output": "o", "uid": 5, "uname": "u"}, "w")
    assert got.owner == Ownership(uid=5, uname="u")
    assert Owned.keys() == {"gid", "gname", "mtime", "output", "schema_version", "uid", "uname"}
    with pytest.raises(UserError) as e:
        Owned.from_json({"output": "o", "owner": 1}, "w")
    assert str(e.value).startswith("w: unknown request key (got 'owner'); allowed keys: gid,")
    with pytest.raises(UserError) as e:
        Owned.from_json({"output": "o", "gid": -1}, "w")
    assert str(e.value).startswith("w: gid: owner id out of range (got -1)")


def test_json_kind_of_annotations() -> None:
    assert json_kind(str) is str
    assert json_kind(list[int]) is list
    assert json_kind(dict[str, Any]) is dict
    assert json_kind(str | None) == (str, type(None))
    assert json_kind(dict[str, Any] | None) == (dict, type(None))
    with pytest.raises(TypeError, match="no JSON type"):
        json_kind(Path)


@pytest.mark.parametrize("mnemonic", sorted(ACTIONS))
def test_every_action_has_a_frozen_request_named_after_it(mnemonic: str) -> None:
    module = importlib.import_module(ACTIONS[mnemonic].split(":")[0])
    cls = getattr(module, f"{mnemonic}Request", None)
    assert isinstance(cls, type) and issubclass(cls, Request), mnemonic
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert cls.schema_version == SCHEMA_VERSION
