"""A store of 30 paths (busybox, a greeting, 27 libraries, an app) with their own layers,
and the LayerGroups / CustomizationLayer / ImageAssemble requests over it
(test_layered_image*.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.cli import main
from strata.oci.layer import write_descriptor
from strata.store.closure import Closure, PathInfo
from strata.store.layer import write_store_layer
from strata.store.references import describe

BUSYBOX = "/bin/busybox"
N_LIBS = 27
GREETING = "hello from a store path"


def action(tmp: Path, mnemonic: str, req: dict[str, Any], tag: str = "") -> int:
    path = tmp / f"{mnemonic}{tag}.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


@dataclass
class Store:
    """Store paths on disk with their descriptions and their own layers."""

    root: Path
    infos: dict[str, PathInfo]  # short name -> info
    srcs: dict[str, Path]

    def path(self, short: str) -> str:
        return self.infos[short].path

    def add(
        self,
        short: str,
        files: dict[str, str | bytes],
        refs: tuple[str, ...] = (),
        links: tuple[tuple[str, str], ...] = (),
    ) -> str:
        src = self.root / "src" / short
        for rel, data in files.items():
            f = src / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data if isinstance(data, bytes) else data.encode())
            if rel.startswith("bin/"):
                os.chmod(f, 0o755)
        for rel, target in links:
            os.symlink(target, src / rel)
        full_refs = [self.path(r) for r in refs]
        described = describe(src, short, full_refs, full_refs)
        self.infos[short] = described.info
        self.srcs[short] = src
        out = self.root / "layers"
        out.mkdir(exist_ok=True)
        blob = out / f"{short}.tar"
        descriptor = write_store_layer(blob, src, described.info.path, "/nix/store", "none")
        write_descriptor(out / f"{short}.json", descriptor, blob)
        return described.info.path

    def store_layers(self) -> list[dict[str, str]]:
        out = self.root / "layers"
        return [
            {
                "store_path": info.path,
                "blob": str(out / f"{s}.tar"),
                "descriptor": str(out / f"{s}.json"),
            }
            for s, info in sorted(self.infos.items())
        ]

    def closure_file(self, roots: list[str], name: str = "closure.json") -> str:
        closure = Closure(
            tuple(sorted(self.path(r) for r in roots)),
            tuple(sorted(self.infos.values(), key=lambda i: i.path)),
        )
        f = self.root / name
        f.write_bytes(closure.to_bytes())
        return str(f)


def make_store(root: Path, greeting: str = GREETING, app: str = "app") -> Store:
    store = Store(root, {}, {})
    if Path(BUSYBOX).exists():
        busybox = Path(BUSYBOX).read_bytes()
    else:
        busybox = b"busybox is not installed here\n"
    store.add("busybox", {"bin/busybox": busybox}, links=(("bin/sh", "busybox"),))
    store.add("greeting", {"share/greeting.txt": greeting + "\n"})
    for i in range(N_LIBS):
        wanted = {f"lib-{i - 1:02d}", f"lib-{i // 2:02d}"} if i else set()
        refs = tuple(sorted(wanted - {f"lib-{i:02d}"}))
        text = "".join(store.path(r) + "\n" for r in refs) + f"lib {i}\n"
        store.add(f"lib-{i:02d}", {f"share/lib-{i:02d}.txt": text}, refs)
    bb = store.path("busybox")
    script = (
        f"#!{bb}/bin/sh\n"
        f"read line < {store.path('greeting')}/share/greeting.txt\n"
        'echo "$line"\n'
        f"# needs {store.path(f'lib-{N_LIBS - 1:02d}')}\n"
    )
    store.add(app, {"bin/app": script}, ("busybox", "greeting", f"lib-{N_LIBS - 1:02d}"))
    return store


def groups(tmp: Path, store: Store, name: str = "groups", **extra: Any) -> Path:
    out = tmp / name
    req = {
        "store_layers": store.store_layers(),
        "closures": [store.closure_file(["app"])],
        "output": str(out),
        **extra,
    }
    assert action(tmp, "LayerGroups", req, tag=name) == 0
    return out


def layers_of(d: Path) -> list[dict[str, Any]]:
    data = json.loads((d / "layers.json").read_text())
    assert data["schema_version"] == 1
    layers: list[dict[str, Any]] = data["layers"]
    return layers


def customization(tmp: Path, store: Store) -> dict[str, str]:
    req = {
        "contents": [
            {"store_path": store.path("busybox"), "src": str(store.srcs["busybox"])},
            {"store_path": store.path("app"), "src": str(store.srcs["app"])},
        ],
        "extra_commands": "mkdir -m 1777 tmp",
        "fake_root_commands": "mkdir data && chown 1000:1000 data && chmod 0700 data",
        "output": str(tmp / "custom.tar.gz"),
        "descriptor": str(tmp / "custom.json"),
    }
    assert action(tmp, "CustomizationLayer", req) == 0
    return {"blob": req["output"], "descriptor": req["descriptor"]}


def image_request(groups_dir: Path, custom: dict[str, str], store: Store) -> dict[str, Any]:
    return {
        "config": {"Cmd": [f"{store.path('app')}/bin/app"], "Env": ["PATH=/bin"]},
        "layers": [{"dir": str(groups_dir)}, custom],
        "name": "strata-test/layered",
        "tag": "v1",
    }
