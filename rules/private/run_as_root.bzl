"""run_as_root: dockerTools' runAsRoot without a VM, as a layer on top of a parent image.

`run_as_root_layer(ctx, ...)` is the hook image rules call for a
`run_as_root` attribute; the `run_as_root` rule is the standalone form: an
image made of its parent, the closure of `contents`, and the script's layer.
"""

load("//rules:providers.bzl", "ImageInfo", "StorePathInfo")
load(":common.bzl", "TOOL_ATTRS", "base_blobs_of", "default_image_name", "docker_archive_action", "image_requirements", "label_fail", "run_strata", "validate_config", "with_base_blobs")
load(":sbom.bzl", "sbom_action")

def run_as_root_layer(ctx, script, base_archive = None, layers = [], compressor = "gzip", prefix = None, mtime = 1, base_name = "", layers_dir = None, base_blobs = depset()):
    """Register the RunAsRoot action; return struct(blob, descriptor) of the script's layer.

    Args:
      ctx: the rule context (needs `_strata` from TOOL_ATTRS).
      script: shell text run as root (`/bin/sh -ec`) in the image's root filesystem.
      base_archive: File, the parent image (docker-archive or OCI layout), or None.
      layers: structs with `blob` and `descriptor` Files, unpacked after the parent, in order.
      compressor: "none", "gzip" or "zstd".
      prefix: output file prefix (default: the target name).
      mtime: time of every entry of the layer.
      base_name: which image of a multi-image base archive ("repo:tag"); "" for the only one.
      layers_dir: File (directory), a LayerGroups output unpacked after the base, before `layers`.
      base_blobs: depset of directories with a shallow base's layer blobs (`base_blobs_of`).

    Returns:
      struct(blob = File, descriptor = File)
    """
    prefix = prefix or ctx.label.name
    blob = ctx.actions.declare_file(prefix + ".runasroot.tar")
    descriptor = ctx.actions.declare_file(prefix + ".runasroot.json")
    req = {
        "compressor": compressor,
        "descriptor": descriptor.path,
        "layers": ([{"dir": layers_dir.path}] if layers_dir else []) + [{"blob": l.blob.path, "descriptor": l.descriptor.path} for l in layers],
        "mtime": mtime,
        "output": blob.path,
        "script": script,
    }
    inputs = [l.blob for l in layers] + [l.descriptor for l in layers] + ([layers_dir] if layers_dir else [])
    if base_archive:
        req["base"] = {"name": base_name, "path": base_archive.path}
        inputs.append(base_archive)
    run_strata(ctx, "RunAsRoot", with_base_blobs(req, base_blobs), depset(inputs, transitive = [base_blobs]), [blob, descriptor], "run_as_root layer of")
    return struct(blob = blob, descriptor = descriptor)

def _run_as_root_impl(ctx):
    if not ctx.attr.script.strip():
        label_fail(ctx, "script", "must not be empty", repr(ctx.attr.script), "write the shell commands to run as root, e.g. \"chown -R 1000 /srv\"")
    config = validate_config(ctx, ctx.attr.config)
    parent = ctx.attr.from_image[ImageInfo]
    if parent.image_info == None:
        label_fail(ctx, "from_image", "must be one image, not a multi-architecture index", "an image_index", "use one platform's image")
    spis = [c[StorePathInfo] for c in ctx.attr.contents]
    entries = depset(transitive = [s.closure for s in spis]).to_list()
    parent_paths = {e.info.path: True for e in parent.store_paths.to_list()}
    path_layers = [struct(blob = e.layer, descriptor = e.descriptor) for e in entries if e.info.path not in parent_paths]
    # The parent is read from its OCI layout: its docker-archive is never needed.
    base_blobs = base_blobs_of([ctx.attr.from_image])
    script_layer = run_as_root_layer(ctx, ctx.attr.script, parent.oci_layout, path_layers, ctx.attr.compressor, mtime = ctx.attr.mtime, base_blobs = base_blobs)
    layers = path_layers + [script_layer]

    oci = ctx.actions.declare_directory(ctx.label.name + ".oci")
    info = ctx.actions.declare_file(ctx.label.name + ".image.json")
    name = default_image_name(ctx)
    req = {
        "architecture": parent.architecture,
        "base": {"name": "", "path": parent.oci_layout.path},
        "config": config,
        "layers": [{"blob": l.blob.path, "descriptor": l.descriptor.path} for l in layers],
        "name": name,
        "outputs": {"image_info": info.path, "oci_layout": oci.path},
    }
    if ctx.attr.created:
        req["created"] = ctx.attr.created
    if ctx.attr.tag:
        req["tag"] = ctx.attr.tag
    inputs = [parent.oci_layout] + [l.blob for l in layers] + [l.descriptor for l in layers]
    run_strata(ctx, "ImageAssemble", req, depset(inputs), [oci, info], "image", execution_requirements = image_requirements(ctx.attr.created))
    archive = docker_archive_action(ctx, oci, base_blobs)

    # The parent is the base package; its store paths and those of `contents` are in the image.
    infos = {e.info: True for e in parent.store_paths.to_list()}
    infos.update({s.info: True for s in spis})
    sbom = sbom_action(
        ctx,
        name,
        struct(request = {"image": oci.path}, inputs = [oci]),
        store_infos = infos.keys(),
        base = {"name": "", "path": parent.oci_layout.path},
        base_file = parent.oci_layout,
        own_layers = [(script_layer.blob, "run_as_root")],
    )
    return [
        DefaultInfo(files = depset([oci, info])),
        OutputGroupInfo(oci = depset([oci]), image_info = depset([info]), tarball = depset([archive]), layer = depset([script_layer.blob, script_layer.descriptor]), sbom = sbom.files),
        ImageInfo(
            docker_archive = archive,
            oci_layout = oci,
            image_info = info,
            name = name,
            tag = ctx.attr.tag,
            architecture = parent.architecture,
            store_paths = depset(entries, transitive = [parent.store_paths]),
            sbom = sbom.files,
            sbom_layout = sbom.layout,
            base_blobs = base_blobs,
        ),
    ]

run_as_root = rule(
    implementation = _run_as_root_impl,
    doc = """dockerTools' runAsRoot: run a script as root in the parent image plus `contents`; its changes are one more layer.

No VM: the parent's layers and the store paths of `contents` are unpacked
into a private root filesystem, the script runs there under `proot -r ROOT -0`,
and the difference (new and changed files, modes, owners; deletions as
`.wh.` whiteouts) becomes the top layer. Needs `/bin/sh` in the image.

```starlark
load("@strata//rules:defs.bzl", "run_as_root")
run_as_root(
    name = "app",
    from_image = ":base",
    script = \"\"\"
echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd
mkdir -p /home/app && chown 1000:1000 /home/app
rm /etc/motd
\"\"\",
    config = {"User": "app"},
)
```
Outputs: `app.oci` (OCI layout) and `app.image.json`; the docker-archive
`app.tar` in output group `tarball`.""",
    attrs = dict(TOOL_ATTRS, **{
        "from_image": attr.label(mandatory = True, providers = [ImageInfo], doc = "The parent image (an image target); the script's layer goes on top of it."),
        "script": attr.string(mandatory = True, doc = "Shell commands, run by the image's /bin/sh -e as root with / as the image's root."),
        "contents": attr.label_list(providers = [StorePathInfo], doc = "Store paths added to the image (their closures' layers) before the script runs."),
        "config": attr.string(doc = "Config changes as JSON (the defs.bzl macro takes a dict); merged over the parent's, Env last-wins."),
        "image_name": attr.string(doc = "Repository name; default <package>/<name>."),
        "tag": attr.string(doc = "Image tag; default: a hash of the image's content."),
        "created": attr.string(doc = "Image creation time, RFC 3339; default 1970-01-01T00:00:01Z; \"now\" as for docker_image (the image action is then `no-cache`)."),
        "compressor": attr.string(default = "gzip", values = ["none", "gzip", "zstd"], doc = "Compression of the script's layer."),
        "mtime": attr.int(default = 1, doc = "mtime of every entry of the script's layer."),
    }),
)
