"""strata.oci.docker_load: chain IDs, which layers a load can leave out, the partial stream.

The real daemon's side (that Docker then needs no file for those layers) is
tests/test_image_load_docker.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.oci.docker_load import chain_ids, index_archive, layers_to_omit, stream_partial


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(path: Path, images: dict[str, list[bytes]], long_names: bool = False) -> None:
    """A docker-archive of uncompressed layers; `long_names` puts the layers under names
    longer than ustar holds, so their members start with a PAX header."""
    members: dict[str, bytes] = {}
    manifest = []
    for tag, layers in images.items():
        diff_ids = [_sha(layer) for layer in layers]
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        names = [("x" * 120 + "/" if long_names else "") + d[7:] + ".tar" for d in diff_ids]
        members[_sha(config)[7:] + ".json"] = config
        members.update(zip(names, layers, strict=True))
        manifest.append({"Config": _sha(config)[7:] + ".json", "Layers": names, "RepoTags": [tag]})
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_chain_ids_follow_the_image_spec() -> None:
    a, b, c = (_sha(x) for x in (b"a", b"b", b"c"))
    ab = _sha(f"{a} {b}".encode())
    assert chain_ids([a, b, c]) == [a, ab, _sha(f"{ab} {c}".encode())]
    assert chain_ids([]) == []


def test_a_layer_is_left_out_only_where_every_use_of_it_is_present(tmp_path: Path) -> None:
    base, top, other = b"base" * 300, b"top" * 300, b"other" * 300
    path = tmp_path / "a.tar"
    # `top` sits at depth 1 in one image and at depth 0 in the other
    _archive(path, {"x:1": [base, top], "y:1": [top, other]})
    index = index_archive(path)
    names = {layer: _sha(layer)[7:] + ".tar" for layer in (base, top, other)}
    x = chain_ids([_sha(base), _sha(top)])
    y = chain_ids([_sha(top), _sha(other)])
    assert layers_to_omit(index, frozenset()) == frozenset()
    assert layers_to_omit(index, frozenset(x)) == {names[base]}  # top is still wanted by y
    assert layers_to_omit(index, frozenset(x + y[:1])) == {names[base], names[top]}
    assert layers_to_omit(index, frozenset(x + y)) == set(names.values())


@pytest.mark.parametrize("long_names", [False, True])
def test_the_partial_stream_is_the_archive_without_those_members(
    tmp_path: Path, long_names: bool
) -> None:
    path = tmp_path / "a.tar"
    base, top = bytes(range(256)) * 40, b"top\n" * 10
    _archive(path, {"x:1": [base, top]}, long_names)
    index = index_archive(path)
    omit = layers_to_omit(index, frozenset(chain_ids([_sha(base)])))
    assert len(omit) == 1
    out = io.BytesIO()
    stream_partial(index, omit, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as got, tarfile.open(path) as full:
        kept = [m.name for m in full.getmembers() if m.name not in omit]
        assert [m.name for m in got.getmembers()] == kept
        for name in kept:
            assert got.extractfile(name).read() == full.extractfile(name).read()  # type: ignore[union-attr]
    assert len(out.getvalue()) < index.size - len(base)
    # nothing to leave out: the file as it is
    whole = io.BytesIO()
    stream_partial(index, frozenset(), whole)
    assert whole.getvalue() == path.read_bytes()
    assert index.size == path.stat().st_size


def test_a_file_that_is_no_docker_archive_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(b"not a tar" * 100)
    with pytest.raises(UserError) as e:
        index_archive(path)
    assert str(e.value).startswith(f"{path}: not a docker-archive strata can load (")
    assert str(e.value).endswith("); rebuild the image's tarball")
    with tarfile.open(path, "w") as tar:
        tar.addfile(tarfile.TarInfo("other"), io.BytesIO(b""))
    with pytest.raises(UserError) as e:
        index_archive(path)
    assert str(e.value) == (
        f"{path}: not a docker-archive strata can load (no member 'manifest.json'); "
        "rebuild the image's tarball"
    )
