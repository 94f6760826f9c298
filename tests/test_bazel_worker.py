"""strata actions as Bazel persistent workers (strata.bazel_worker), driven as Bazel drives them.

One `strata action StorePath --persistent_worker` process gets length-delimited
WorkRequests on stdin: each action's outputs are byte for byte those of
`strata action StorePath @request.json`, its errors are the same line naming
the same request file, and one worker serves many requests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtools import need, run
from strata.bazel_worker import WorkRequest, WorkResponse, _read_varint, _varint

ROOT = Path(__file__).resolve().parent.parent


def _request(ws: Path, name: str, text: str) -> Path:
    """A StorePath request file `name` in `ws` whose one file holds `text`."""
    out = ws / "out" / name
    out.mkdir(parents=True)
    req = {
        "contents": [{"content": text, "dest": "share/msg.txt", "type": "file"}],
        "name": name,
        "outputs": {k: f"out/{name}/{f}" for k, f in (
            ("descriptor", "layer.json"), ("info", "info.json"), ("layer", "layer.tar"))},
        "references": [],
        "schema_version": 1,
    }  # fmt: skip
    path = ws / f"{name}.StorePath.request.json"
    path.write_text(json.dumps(req, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def _frame(message: object) -> bytes:
    body = message.SerializeToString()  # type: ignore[attr-defined]
    return _varint(len(body)) + body


def _responses(data: bytes) -> list[object]:
    import io

    stream = io.BytesIO(data)
    out = []
    while (size := _read_varint(stream)) is not None:
        response = WorkResponse()
        response.ParseFromString(stream.read(size))
        out.append(response)
    return out


def _work(ws: Path, path: Path, request_id: int = 0) -> object:
    """The WorkRequest Bazel sends for the action whose flag file is `path`."""
    rel = str(path.relative_to(ws))
    request = WorkRequest(arguments=[path.read_text().rstrip("\n")], request_id=request_id)
    request.inputs.add(path=rel, digest=b"")
    return request


def _strata(ws: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "python")}
    return subprocess.run(
        [sys.executable, "-B", "-m", "strata", *args],
        cwd=ws, input=stdin, capture_output=True, env=env, timeout=120,
    )  # fmt: skip


def test_a_worker_gives_each_action_the_bytes_and_errors_of_its_own_process(
    tmp_path: Path,
) -> None:
    alone, ws = tmp_path / "alone", tmp_path / "ws"
    for d in (alone, ws):
        d.mkdir()
    names = ("one-1.0", "two-2.0")
    texts = {"one-1.0": "one", "two-2.0": "zwei \u00fcber \u2603"}  # UTF-8 in the request line
    for name in names:
        path = _request(alone, name, texts[name])
        proc = _strata(alone, "action", "StorePath", f"@{path.name}")
        assert proc.returncode == 0, proc.stderr
    bad = ws / "bad.StorePath.request.json"
    bad_request = {"name": "b\u00e4\u2603d", "schema_version": 7}  # UTF-8 beyond ASCII
    bad.write_text(json.dumps(bad_request, ensure_ascii=False) + "\n")

    stdin = b"".join(_frame(_work(ws, _request(ws, n, texts[n]))) for n in names)
    stdin += _frame(_work(ws, bad))
    stdin += _frame(WorkRequest(arguments=["a", "b"]))  # not one line of a request file
    proc = _strata(ws, "action", "StorePath", "--persistent_worker", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""  # the actions' output travels in the responses
    first, second, failed, refused = _responses(proc.stdout)

    assert (first.exit_code, first.output) == (0, "")  # type: ignore[attr-defined]
    assert (second.exit_code, second.output) == (0, "")  # type: ignore[attr-defined]
    for name in names:
        for f in ("info.json", "layer.json", "layer.tar"):
            mine = (ws / "out" / name / f).read_bytes()
            assert mine == (alone / "out" / name / f).read_bytes(), (name, f)

    # The error names the request file, as `strata action StorePath @bad...` does.
    direct = _strata(ws, "action", "StorePath", f"@{bad.name}")
    assert failed.exit_code == direct.returncode == 1  # type: ignore[attr-defined]
    assert failed.output == direct.stderr.decode()  # type: ignore[attr-defined]
    assert failed.output.startswith(f"error: {bad.name}: unsupported schema_version")  # type: ignore[attr-defined]
    assert refused.exit_code == 2  # type: ignore[attr-defined]
    assert "got 2 arguments" in refused.output  # type: ignore[attr-defined]


def test_action_without_a_request_is_one_usage_line(tmp_path: Path) -> None:
    proc = _strata(tmp_path, "action", "StorePath")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error: no request (got only 'StorePath')")
    assert proc.stderr.count(b"\n") == 1


WORKSPACE = """workspace(name = "workertest")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

BUILD = """load("@strata//rules:defs.bzl", "layered_image", "store_path")

[genrule(name = "f%d" % i, outs = ["f%d.txt" % i], cmd = "echo %d > $@" % i) for i in range(6)]

[store_path(name = "p%d" % i, srcs = {":f%d" % i: "share/f.txt"}) for i in range(6)]

layered_image(name = "img", contents = [":p%d" % i for i in range(6)], max_layers = 4)
"""


@pytest.mark.realtool
@pytest.mark.slow
def test_bazel_runs_strata_actions_in_workers_with_the_same_bytes(
    tmp_path: Path, tools_cache: str
) -> None:
    """Bazel 4.2.3 with its default strategies runs the StorePath, LayerGroups, ...
    actions in strata's persistent workers; the image is byte for byte strata's."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(WORKSPACE.format(root=ROOT))
    (ws / "BUILD").write_text(BUILD)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STRATA_TOOLS_CACHE": tools_cache}
    common = [need("bazel"), "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    oci = "--output_groups=+oci"
    proc = run(*common, "build", "--symlink_prefix=/", oci, "//:img", cwd=ws, env=env)
    # e.g. "INFO: 25 processes: 9 internal, 16 worker." (the genrules run sandboxed)
    summary = [line for line in proc.stderr.splitlines() if " processes: " in line]
    assert summary and re.search(r"\b\d+ worker\b", summary[-1]), proc.stderr[-2000:]
    out = Path(
        run(*common, "info", "--symlink_prefix=/", "bazel-bin", cwd=ws, env=env).stdout.strip()
    )
    run(ROOT / "tools" / "strata", "build", f"--output_base={tmp_path / 'ob'}", oci, "//:img",
        cwd=ws, env=env)  # fmt: skip
    mine = ws / "strata-bin"
    for name in ("img.image.json", "img.oci/index.json"):
        assert (out / name).read_bytes() == (mine / name).read_bytes(), name
    blobs = sorted(p.name for p in (out / "img.oci/blobs/sha256").iterdir())
    assert blobs == sorted(p.name for p in (mine / "img.oci/blobs/sha256").iterdir())
