"""A short, human-readable summary of an image's CycloneDX SBOM (`strata sbom`).

For each store path: its own NAR size and its closure size (itself and every
path it depends on, each counted once), largest closure first; then the
largest paths another path depends on, with how many depend on each. Sizes
are NAR sizes, what the paths take in the image's layers before compression.
"""

from __future__ import annotations

from typing import Any

_LARGEST = 5


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The summary of one CycloneDX document written by strata.sbom.cyclonedx."""
    image = doc.get("metadata", {}).get("component", {})
    comps = [c for c in doc.get("components", []) if isinstance(c, dict)]
    paths = {c["bom-ref"]: c for c in comps if c.get("type") == "library"}
    size = {ref: _nar_size(c) for ref, c in paths.items()}
    deps = {
        d["ref"]: [r for r in d.get("dependsOn", []) if r in paths]
        for d in doc.get("dependencies", [])
        if d.get("ref") in paths
    }

    def closure(ref: str) -> set[str]:
        seen: set[str] = set()
        todo = [ref]
        while todo:
            r = todo.pop()
            if r not in seen:
                seen.add(r)
                todo.extend(deps.get(r, []))
        return seen

    totals = {ref: sum(size[r] for r in closure(ref)) for ref in paths}
    bases = [c for c in comps if c.get("type") == "container"]
    files = [c for c in comps if c.get("type") == "file"]
    lines = [
        f"{image.get('name', '?')} {image.get('version', '')}",
        f"{len(paths)} store paths ({human_size(sum(size.values()))}), "
        f"{len(bases)} base images, {len(files)} files in the image's own layers",
    ]
    for b in bases:
        own = [r for r in b.get("externalReferences", []) if r.get("type") == "bom"]
        carries = f" (carries its own SBOM: {len(own)} documents)" if own else ""
        lines.append(f"base: {b.get('name')} {b.get('version')}{carries}")
    if paths:
        lines.append("")
        lines.append(f"{'closure':>10}  {'own':>10}  package")
        order = sorted(paths, key=lambda r: (-totals[r], r))
        for ref in order:
            c = paths[ref]
            label = c.get("name", "") + (f" {c['version']}" if c.get("version") else "")
            lines.append(f"{human_size(totals[ref]):>10}  {human_size(size[ref]):>10}  {label}")
        lines.append("")
        users = {ref: sum(1 for r in paths if ref in deps.get(r, [])) for ref in paths}
        needed = [r for r in paths if users[r]]
        lines.append("largest dependencies:" if needed else "largest dependencies: none")
        for ref in sorted(needed, key=lambda r: (-size[r], r))[:_LARGEST]:
            lines.append(f"  {human_size(size[ref]):>10}  {ref} (used by {users[ref]})")
    return lines


def _nar_size(component: dict[str, Any]) -> int:
    for prop in component.get("properties", []):
        if prop.get("name") == "nix:nar_size":
            return int(prop.get("value", 0))
    return 0
