"""The `Sbom` action: an image's SPDX 2.3 and CycloneDX 1.5 documents (output group `sbom`).

Registered by every image rule and run only when something asks for the
`sbom` output group (`--output_groups=+sbom`), so a plain build is unchanged.
Its inputs are files the image's other actions already wrote: the StorePath
`info` files (closures with references and NAR hashes), the image's OCI
layout (manifest digest, `created`), the base image and the image's own top
layers (files placed by `files`, `extra_commands`, `run_as_root`).
"""

load(":common.bzl", "NO_REMOTE_CACHE", "run_strata")

def sbom_action(ctx, name, image, store_infos = [], base = None, base_file = None, own_layers = []):
    """Register `Sbom`; return struct(files, layout).

    `files`: depset of `<target>.spdx.json`, `<target>.cdx.json` and, for a stored image,
    `<target>.sbom.oci`, the image's OCI layout plus both documents as OCI 1.1 referrers
    (`layout`, None for a stream image, whose image is never stored).

    Args:
      ctx: the rule context (needs `_strata`).
      name: the image's repository name.
      image: struct(request = {"image": path} or {"assemble": request}, inputs = [File]).
      store_infos: StorePath `info` Files of the image's store paths (each holds its closure).
      base: {"name", "path"} of the base image, or None.
      base_file: the base image's File (layout or archive), or None.
      own_layers: [(File, "customisation" | "run_as_root")]: layers whose files are listed.
    """
    spdx = ctx.actions.declare_file(ctx.label.name + ".spdx.json")
    cdx = ctx.actions.declare_file(ctx.label.name + ".cdx.json")
    outputs = {"cyclonedx": cdx.path, "spdx": spdx.path}
    layout = None
    if "image" in image.request:
        layout = ctx.actions.declare_directory(ctx.label.name + ".sbom.oci")
        outputs["referrers"] = layout.path
    req = dict(image.request)
    req.update({
        "layers": [{"blob": blob.path, "layer": kind} for blob, kind in own_layers],
        "name": name,
        "outputs": outputs,
        "store_paths": [f.path for f in store_infos],
    })
    inputs = list(image.inputs) + list(store_infos) + [blob for blob, _ in own_layers]
    if base:
        req["base"] = {"name": base["name"], "path": base["path"]}
        inputs.append(base_file)
    run_strata(ctx, "Sbom", req, depset(inputs), [spdx, cdx] + ([layout] if layout else []), "SBOM of", execution_requirements = NO_REMOTE_CACHE)
    return struct(files = depset([spdx, cdx] + ([layout] if layout else [])), layout = layout)
