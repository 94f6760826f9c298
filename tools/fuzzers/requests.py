"""Action requests: `strata action <Mnemonic> @request.json` with bent requests.

Every action that neither runs a command named by its request nor talks to
a network is fed a request near a valid one: its JSON bent, its paths
pointing at real fixture files (a layer and its descriptor, a docker-archive,
an OCI layout, a source tree) or at nothing. Paths are confined before the
action runs (no `..`, absolute ones moved under the scratch directory), and
the working directory is the scratch directory, so outputs land there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from fuzzers.gen import json_doc, seeded
from fuzzers.harness import Files, Target
from strata.actions import lookup
from strata.actions.request import load_request

# Not fuzzed: RunAsRoot and CustomizationLayer run scripts from the request,
# NixStoreImport runs the program it names, StreamImage writes to `fd:N`,
# ImagePull and ImagePush talk to registries (see the registry-pull target).
MNEMONICS = [
    "ImageAssemble",
    "ImageArchive",
    "ImageMerge",
    "ImageExport",
    "LayerGroups",
    "StorePath",
    "ImageIndex",
    "NixDb",
    "LinkedStorePath",
    "StoreTree",
]
_MNEMONICS = st.sampled_from(MNEMONICS)
_FIXTURES: list[Path] = []


def fixtures() -> Path:
    """Real inputs for requests to name, made once per process with the actions themselves."""
    if _FIXTURES and _fingerprint(_FIXTURES[0]) == _FIXTURES[1:]:
        return _FIXTURES[0]
    top = Path(tempfile.mkdtemp(prefix="fuzz-fixtures-"))
    (top / "src" / "bin").mkdir(parents=True)
    (top / "src" / "a.txt").write_text("hello\n")
    (top / "src" / "bin" / "x").write_text("#!/bin/sh\n")
    (top / "dir").mkdir()
    layer = {
        "compressor": "gzip",
        "files": [{"src": str(top / "src"), "dest": "/opt"}],
        "descriptor": str(top / "layer.json"),
        "output": str(top / "layer.tar"),
    }
    image = {
        "layers": [{"blob": str(top / "layer.tar"), "descriptor": str(top / "layer.json")}],
        "name": "img",
        "tag": "1",
        "outputs": {
            "docker_archive": str(top / "image.tar"),
            "oci_layout": str(top / "image.oci"),
            "image_info": str(top / "image.json"),
        },
    }
    for mnemonic, req in (("CustomizationLayer", layer), ("ImageAssemble", image)):
        lookup(mnemonic)({"schema_version": 1, **req}, mnemonic)
    _FIXTURES[:] = [top, *_fingerprint(top)]
    return top


def _fingerprint(top: Path) -> list[Any]:
    return sorted((p.name, p.stat().st_mtime_ns) for p in top.iterdir())


def templates(fx: Path) -> dict[str, dict[str, Any]]:
    layer = {"blob": str(fx / "layer.tar"), "descriptor": str(fx / "layer.json")}
    return {
        "StorePath": {
            "name": "x",
            "contents": [
                {"src": str(fx / "src"), "dest": "/x", "mode": "0755"},
                {"dest": "/d", "type": "dir"},
                {"dest": "/l", "type": "symlink", "target": "/x"},
                {"dest": "/f", "type": "file", "content": "x"},
            ],
            "outputs": {"info": "out.info", "layer": "out.tar", "descriptor": "out.json"},
        },
        "ImageAssemble": {
            "base": {"path": str(fx / "image.tar"), "name": "img:1"},
            "config": {"Env": ["A=b"], "Cmd": ["/bin/sh"]},
            "layers": [layer, {"dir": str(fx / "dir")}],
            "outputs": {"docker_archive": "o.tar", "oci_layout": "o.oci", "image_info": "i"},
        },
        "ImageExport": {"image": str(fx / "image.oci"), "name": "1", "output": "out.tar"},
        "ImageArchive": {"image": str(fx / "image.oci"), "output": "out.tar"},
        "ImageMerge": {
            "images": [str(fx / "image.tar"), str(fx / "image.oci")],
            "output": "out.tar",
        },
        "ImageIndex": {"images": [str(fx / "image.oci")], "output": "out.oci"},
    }


PATHS = [
    "out",
    "o/x",
    "",
    ".",
    "missing",
    "layer.tar",
    "image.tar",
    "image.oci",
    "layer.json",
    "src",
    "src/a.txt",
    "dir",
]
KEYS = [
    "architecture",
    "base",
    "closure",
    "compressor",
    "config",
    "contents",
    "created",
    "descriptor",
    "files",
    "image",
    "images",
    "info",
    "layer",
    "layering",
    "layers",
    "links",
    "max_layers",
    "mtime",
    "name",
    "os",
    "output",
    "outputs",
    "paths",
    "references",
    "roots",
    "src",
    "store_dir",
    "store_layers",
    "store_path",
    "store_paths",
    "tag",
    "uid",
]


@st.composite
def requests(draw: Any) -> Files:
    fx = fixtures()
    rng = draw(seeded())
    mnemonic = draw(_MNEMONICS)
    base = templates(fx).get(mnemonic)
    if base is None:
        keys = rng.sample(KEYS, rng.randint(0, 6))

        def name() -> str:
            p = rng.choice(PATHS)
            return str(fx / p) if p and rng.random() < 0.7 else p

        base = {k: name() if rng.random() < 0.6 else [name(), name()] for k in keys}
    req = {"schema_version": 1, **base}
    return {"mnemonic": mnemonic.encode(), "request.json": json_doc(rng, req, max_edits=4)}


def _confine(value: Any, scratch: Path, fx: Path) -> Any:
    """No `..`, and absolute paths only under the fixtures or the scratch directory."""
    if isinstance(value, str):
        text = "/".join(p for p in value.split("/") if p != "..")
        if text.startswith("/") and not text.startswith(str(fx) + "/") and text != str(fx):
            text = str(scratch) + text
        return text
    if isinstance(value, list):
        return [_confine(v, scratch, fx) for v in value]
    if isinstance(value, dict):
        return {_confine(k, scratch, fx): _confine(v, scratch, fx) for k, v in value.items()}
    return value


def run_request(files: Files, scratch: Path) -> str:
    fx = fixtures()
    mnemonic = files["mnemonic"].decode()
    if mnemonic not in MNEMONICS:
        return "not fuzzed"
    try:
        parsed = json.loads(files["request.json"])
        data = json.dumps(_confine(parsed, scratch, fx)).encode()
    except (ValueError, RecursionError):
        data = files["request.json"]  # not JSON: load_request must say so
    (scratch / "request.json").write_bytes(data)
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        req, where = load_request(f"@{scratch / 'request.json'}")
        lookup(mnemonic)(req, where)
    finally:
        os.chdir(cwd)
    return mnemonic


TARGETS = [
    Target(
        "action-request",
        "actions/request.py and every action's request checks (no script, network or fd:N ones)",
        requests(),
        run_request,
    )
]
