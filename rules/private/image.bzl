"""docker_image and layered_image (dockerTools.buildImage / buildLayeredImage)."""

load("//rules:providers.bzl", "ImageInfo", "StorePathInfo")
load(":common.bzl", "TOOL_ATTRS", "check_ownership", "label_fail", "run_strata", "validate_config")

def _base(ctx):
    """(request dict or None, input files) for from_image."""
    if not ctx.attr.from_image:
        return None, []
    dep = ctx.attr.from_image
    if ImageInfo in dep:
        f = dep[ImageInfo].docker_archive
    else:
        files = dep[DefaultInfo].files.to_list()
        if len(files) != 1:
            label_fail(ctx, "from_image", "must be an image target or one docker-archive/OCI file", len(files), "point at one image")
        f = files[0]
    name = ctx.attr.from_image_name
    if ctx.attr.from_image_tag:
        name = "%s:%s" % (name, ctx.attr.from_image_tag)
    return {"name": name, "path": f.path}, [f]

def _files(ctx):
    out = []
    inputs = []
    for target, dest in ctx.attr.files.items():
        fs = target[DefaultInfo].files.to_list()
        if len(fs) == 1 and not dest.endswith("/"):
            out.append({"dest": dest, "mode": "0644", "src": fs[0].path})
        else:
            for f in fs:
                out.append({"dest": dest.rstrip("/") + "/" + f.basename, "mode": "0644", "src": f.path})
        inputs.extend(fs)
    return out, inputs

def _image_impl(ctx, contents, copy_contents, pipeline):
    check_ownership(ctx)
    config = validate_config(ctx, ctx.attr.config)
    if ctx.attr.max_layers < 2:
        label_fail(ctx, "max_layers", "must leave room for a customisation layer and one store path layer", ctx.attr.max_layers, "use at least 2 (default 100)")
    spis = [c[StorePathInfo] for c in contents]
    closure = depset(transitive = [s.closure for s in spis])
    entries = closure.to_list()
    files, file_inputs = _files(ctx)
    owner = {"gid": ctx.attr.gid, "gname": ctx.attr.gname, "mtime": ctx.attr.mtime, "uid": ctx.attr.uid, "uname": ctx.attr.uname}

    custom = ctx.actions.declare_file(ctx.label.name + ".custom.tar")
    custom_desc = ctx.actions.declare_file(ctx.label.name + ".custom.json")
    req = {
        "compressor": ctx.attr.compressor,
        "contents": [{"info": s.info.path, "tree": s.tree.path} for s in spis],
        "copy_contents": copy_contents,
        "descriptor": custom_desc.path,
        "extra_commands": ctx.attr.extra_commands,
        "files": files,
        "keep_dirlinks": ctx.attr.keep_contents_dirlinks,
        "output": custom.path,
    }
    req.update(owner)
    run_strata(
        ctx,
        "Customisation",
        req,
        depset(file_inputs + [s.info for s in spis] + [s.tree for s in spis]),
        [custom, custom_desc],
        "customisation layer of",
    )

    archive = ctx.actions.declare_file(ctx.label.name + ".tar")
    oci = ctx.actions.declare_directory(ctx.label.name + ".oci")
    info = ctx.actions.declare_file(ctx.label.name + ".image.json")
    base, base_inputs = _base(ctx)
    req = {
        "architecture": ctx.attr.architecture,
        "compressor": ctx.attr.compressor,
        "config": config,
        "extra_layers": [{"blob": custom.path, "descriptor": custom_desc.path}],
        "include_store_paths": ctx.attr.include_store_paths,
        "max_layers": ctx.attr.max_layers,
        "name": ctx.attr.image_name or ("%s/%s" % (ctx.label.package, ctx.label.name)).lstrip("/"),
        "outputs": {"docker_archive": archive.path, "image_info": info.path, "oci_layout": oci.path},
        "roots": [s.info.path for s in spis],
        "store_paths": [{"info": e.info.path, "layer": e.layer.path} for e in entries],
    }
    if pipeline:
        req["pipeline"] = pipeline
    if base:
        req["base"] = base
    if ctx.attr.created:
        req["created"] = ctx.attr.created
    if ctx.attr.tag:
        req["tag"] = ctx.attr.tag
    run_strata(
        ctx,
        "LayeredImage",
        req,
        depset([custom, custom_desc] + base_inputs + [e.info for e in entries] + [e.layer for e in entries]),
        [archive, oci, info],
        "image",
    )
    return [
        DefaultInfo(files = depset([archive])),
        OutputGroupInfo(oci = depset([oci]), image_info = depset([info])),
        ImageInfo(
            docker_archive = archive,
            oci_layout = oci,
            image_info = info,
            name = req["name"],
            tag = ctx.attr.tag,
            architecture = ctx.attr.architecture,
            store_paths = closure,
        ),
    ]

def _layered_image_impl(ctx):
    pipeline = json.decode(ctx.attr.layering) if ctx.attr.layering else None
    if pipeline != None and type(pipeline) != "list":
        label_fail(ctx, "layering", "must be a JSON list of pipeline steps", ctx.attr.layering, "e.g. [[\"popularity_contest\"], [\"limit_layers\", 99]]")
    return _image_impl(ctx, ctx.attr.contents, False, pipeline)

def _docker_image_impl(ctx):
    # buildImage puts the whole closure in one layer and copies copyToRoot's files to /.
    return _image_impl(ctx, ctx.attr.copy_to_root, True, [["popularity_contest"], ["limit_layers", 1]])

_COMMON_ATTRS = {
    "config": attr.string(doc = "Image config as JSON (the defs.bzl macros take a dict): Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Volumes, Labels, ... Env is merged with the base image's, last wins."),
    "from_image": attr.label(allow_files = True, doc = "Base image: an image target, or a docker-archive / OCI layout file."),
    "from_image_name": attr.string(doc = "Pick this repository name from a multi-image base archive."),
    "from_image_tag": attr.string(doc = "Pick this tag (with from_image_name) from a multi-image base archive."),
    "files": attr.label_keyed_string_dict(allow_files = True, doc = "Plain files → absolute destination in the image's top layer (a destination ending in / takes basenames); mode 0644 (put programs in a store_path with `executables`)."),
    "extra_commands": attr.string(doc = "Shell run by /bin/sh in the top layer's root (not chrooted) after contents are placed; e.g. \"mkdir -m 1777 tmp\"."),
    "keep_contents_dirlinks": attr.bool(doc = "Keep symlinks to directories in the top layer instead of replacing them (keepContentsDirlinks)."),
    "uid": attr.int(default = 0, doc = "Owner uid of every entry of the top layer."),
    "gid": attr.int(default = 0, doc = "Owner gid of every entry of the top layer."),
    "uname": attr.string(doc = "Owner user name of every entry of the top layer."),
    "gname": attr.string(doc = "Owner group name of every entry of the top layer."),
    "mtime": attr.int(default = 1, doc = "mtime (seconds since the epoch) of every entry of the top layer."),
    "created": attr.string(doc = "Image creation time, RFC 3339; default 1970-01-01T00:00:01Z; \"now\" is not reproducible."),
    "image_name": attr.string(doc = "Repository name of the image; default <package>/<name>."),
    "tag": attr.string(doc = "Image tag; default: a hash of the image's content (as dockerTools)."),
    "architecture": attr.string(default = "x86_64", doc = "Target architecture (x86_64, aarch64, ... or GOARCH names)."),
    "compressor": attr.string(default = "gzip", values = ["none", "gzip", "zstd"], doc = "Layer compression."),
    "include_store_paths": attr.bool(default = True, doc = "Include the store paths' layers; False for images run with a bind-mounted store."),
    "max_layers": attr.int(default = 100, doc = "Most layers the image may have, counting base layers and the top layer."),
}

layered_image_rule = rule(
    implementation = _layered_image_impl,
    doc = """dockerTools.buildLayeredImage: one layer per popular store path, the rest grouped.

```starlark
load("@strata//rules:defs.bzl", "layered_image")
layered_image(
    name = "app",
    contents = [":hello", ":busybox"],
    config = {"Cmd": ["/bin/hello"]},
)
```
Outputs: `app.tar` (docker-archive, `docker load -i`), output group `oci`
(OCI layout directory), output group `image_info` (JSON with digests).""",
    attrs = dict(TOOL_ATTRS, **dict(_COMMON_ATTRS, **{
        "contents": attr.label_list(providers = [StorePathInfo], doc = "Store paths of the image; their closure becomes layers and they are symlinked at / in the top layer."),
        "layering": attr.string(doc = "Layering pipeline as JSON (see strata.layering.pipeline); default popularity_contest + limit_layers."),
    })),
)

docker_image_rule = rule(
    implementation = _docker_image_impl,
    doc = """dockerTools.buildImage: copy_to_root's files copied to /, their closure in one layer.

```starlark
load("@strata//rules:defs.bzl", "docker_image")
docker_image(
    name = "hello",
    copy_to_root = [":hello"],
    config = {"Cmd": ["/bin/hello"]},
)
```""",
    attrs = dict(TOOL_ATTRS, **dict(_COMMON_ATTRS, **{
        "copy_to_root": attr.label_list(providers = [StorePathInfo], doc = "Store paths whose files are copied to / (their closure is in the image too)."),
    })),
)
