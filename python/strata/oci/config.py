"""The image configuration: what a runtime needs besides the layers.

We accept the Docker-style field names users already know (`Env`, `Cmd`,
`Entrypoint`, `ExposedPorts`, ...), check every value's shape (a wrong type in
a config is otherwise discovered only when a runtime refuses the image), and
write the config object of the OCI image spec, which Docker reads as well.

Inheritance from a base image works field by field, as a Dockerfile `FROM`
does: scalar fields are replaced, `Labels`, `ExposedPorts` and `Volumes` are
merged, and `Env` is merged by variable name with the last value winning, so
that Docker (which keeps the last duplicate) and Kubernetes (which keeps the
first) see the same environment.

Spec: https://github.com/opencontainers/image-spec/blob/main/config.md
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from strata.errors import UserError
from strata.oci.platform import Platform

DEFAULT_CREATED = "1970-01-01T00:00:01Z"

_LIST_FIELDS = ("Cmd", "Entrypoint", "Env")
_SET_FIELDS = ("ExposedPorts", "Volumes")
_STR_FIELDS = ("StopSignal", "User", "WorkingDir")
ALLOWED_FIELDS = tuple(sorted((*_LIST_FIELDS, *_SET_FIELDS, *_STR_FIELDS, "Labels")))

_ENV_NAME = re.compile(r"[^=\s][^=]*")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _str_list(key: str, value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(
            f"config {key} must be a list of strings (got {_got(value)}); "
            f'write it as ["/bin/sh", "-c", "..."]',
            where=where,
        )
    return list(value)


def _env(value: Any, where: str) -> list[str]:
    items = _str_list("Env", value, where)
    for item in items:
        name, eq, _ = item.partition("=")
        if not eq or not _ENV_NAME.fullmatch(name):
            raise UserError(
                f'config Env entries must be KEY=VALUE (got {_got(item)}); write e.g. "PATH=/bin"',
                where=where,
            )
    return merge_env([], items)


def _set(key: str, value: Any, where: str) -> dict[str, dict[str, Any]]:
    if isinstance(value, dict):
        names = list(value)
        if not all(isinstance(v, dict) and not v for v in value.values()):
            raise UserError(
                f"config {key} values must be empty objects (got {_got(value)}); "
                f'give a list like ["80/tcp"] or {{"80/tcp": {{}}}}',
                where=where,
            )
    elif isinstance(value, list):
        names = value
    else:
        names = None
    if names is None or not all(isinstance(n, str) and n for n in names):
        raise UserError(
            f"config {key} must be a list of non-empty strings or an object "
            f'(got {_got(value)}); give a list like ["80/tcp"]',
            where=where,
        )
    if key == "ExposedPorts":
        for port in names:
            if not re.fullmatch(r"\d{1,5}(-\d{1,5})?(/(tcp|udp|sctp))?", port):
                raise UserError(
                    f"config ExposedPorts entries must be PORT[/tcp|udp|sctp] "
                    f'(got {_got(port)}); write e.g. "8080/tcp"',
                    where=where,
                )
    return {n: {} for n in sorted(names)}


def validate_config(fields: Any, where: str) -> dict[str, Any]:
    """Check user-given config fields and return them in canonical shape.

    Sets come back as `{"x": {}}` objects, Env with duplicates resolved.
    """
    if not isinstance(fields, dict):
        raise UserError(f"config must be an object (got {_got(fields)})", where=where)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in ALLOWED_FIELDS:
            raise UserError(
                f"unknown config field (got {key!r}); allowed fields: {', '.join(ALLOWED_FIELDS)}",
                where=where,
            )
        if key == "Env":
            out[key] = _env(value, where)
        elif key in _LIST_FIELDS:
            out[key] = _str_list(key, value, where)
        elif key in _SET_FIELDS:
            out[key] = _set(key, value, where)
        elif key == "Labels":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise UserError(
                    f"config Labels must map strings to strings (got {_got(value)}); "
                    'write e.g. {"org.opencontainers.image.source": "..."}',
                    where=where,
                )
            out[key] = dict(value)
        else:
            if not isinstance(value, str):
                raise UserError(f"config {key} must be a string (got {_got(value)})", where=where)
            out[key] = value
    return out


def merge_env(base: Sequence[str], override: Sequence[str]) -> list[str]:
    """Env from `base` then `override`, one entry per name, the last value winning.

    A name keeps the position of its first appearance, so a base PATH stays
    where the base put it even when its value is replaced.
    """
    values: dict[str, str] = {}
    for item in [*base, *override]:
        name = item.partition("=")[0]
        values[name] = item  # dict keeps first insertion position, updates value
    return list(values.values())


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Inherit `base` config fields, overridden field by field by `override`.

    As in a Dockerfile, setting `Entrypoint` without `Cmd` drops the base's
    `Cmd`: a base shell `Cmd` would otherwise become arguments to the new
    entrypoint.
    """
    out = {k: v for k, v in base.items() if v is not None}
    for key, value in override.items():
        if key == "Env":
            out[key] = merge_env(out.get("Env") or [], value)
        elif key in ("Labels", *_SET_FIELDS):
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    if "Entrypoint" in override and "Cmd" not in override:
        out.pop("Cmd", None)
    return out


def parse_created(
    value: str | None, *, now: dt.datetime | None = None, where: str = "created"
) -> tuple[str, list[str]]:
    """Resolve `created` to an RFC 3339 timestamp; return it and any warnings.

    "now" is allowed but makes every build differ, so it comes with a warning
    naming the reproducible alternative. The rules tag the action `no-cache`,
    so no cache hands back an image with an old time.
    """
    if value is None or value == "":
        return DEFAULT_CREATED, []
    if value == "now":
        moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
        warning = (
            'created = "now" makes every build of this image differ (the image is never '
            "cached: each build that makes it, as after a clean, gives a new time); "
            f'leave it unset for the reproducible default "{DEFAULT_CREATED}" '
            'or give a fixed time such as "2024-01-01T00:00:00Z"'
        )
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), [warning]
    if not _RFC3339.fullmatch(value):
        raise UserError(
            f'created must be an RFC 3339 time or "now" (got {value!r}); '
            f'write e.g. "{DEFAULT_CREATED}"',
            where=where,
        )
    try:
        created_epoch(value)
    except ValueError:
        raise UserError(
            f'created is not a real date (got {value!r}); write e.g. "{DEFAULT_CREATED}"',
            where=where,
        ) from None
    return value, []


def created_epoch(created: str) -> int:
    """Seconds since the epoch for an RFC 3339 time (fractions dropped), never negative."""
    text = created.replace("Z", "+00:00")
    text = re.sub(r"\.\d+", "", text)
    return max(0, int(dt.datetime.fromisoformat(text).timestamp()))


def build_config(
    *,
    platform: Platform,
    created: str,
    fields: dict[str, Any],
    diff_ids: Sequence[str],
    base: dict[str, Any] | None = None,
    new_layers: int | None = None,
    created_by: str = "strata",
) -> dict[str, Any]:
    """The image config object (not yet serialised).

    `diff_ids` lists every layer, base layers first; the last `new_layers` of
    them (all, when there is no base) get one history entry each, appended to
    the base's history.
    """
    base = base or {}
    merged = merge_config(base.get("config") or {}, fields)
    count = len(diff_ids) if new_layers is None else new_layers
    history = list(base.get("history") or [])
    history += [{"created": created, "created_by": created_by} for _ in range(count)]
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "config": merged,
        "created": created,
        "history": history,
        "os": platform.os,
        "rootfs": {"diff_ids": list(diff_ids), "type": "layers"},
    }
    if platform.variant:
        config["variant"] = platform.variant
    return config
