"""docker_image, layered_image and stream_layered_image (dockerTools' buildImage, buildLayeredImage, streamLayeredImage).

Every image runs the same three steps, each its own action and cache entry:

1. `CustomizationLayer`: the top layer (contents joined at /, `files`,
   `extra_commands`, `fake_root_commands` under fakeroot).
2. `LayerGroups`: the store path layers, grouped at execution time (grouping
   breaks ties by store path name, a hash the rules cannot know). A path with a
   layer of its own gets its cached `store_path` layer verbatim; an uncompressed
   group of several paths is a recipe (byte ranges of those layers), read once
   for its digest. Remote-cached only then: a written merged or compressed group
   would store the closure's bytes twice.
3. `ImageAssemble`, the image record (`<name>.image.json`: every digest, read
   from the layers' descriptors), or, for the stream variant, `StreamImage` at
   run time. A second `ImageAssemble` writes the OCI layout (`<name>.oci`, its
   layer blobs hard links to the layer outputs, a merged group written out from
   its recipe) only when something needs it: the `oci` output group or a rule
   given `ImageInfo.oci_layout`. The layout is `no-remote-cache`: layer blobs are
   the shared unit, whole images are not.

The docker-archive (`<name>.tar`) is a third `ImageAssemble`, also from the
record and the layers (not through the layout), that runs only when something
asks for it: the `tarball` output group (`bazel build //img:app
--output_groups=+tarball`), `image_load`, or a rule given
`ImageInfo.docker_archive`. A plain build writes no whole image, neither
layout nor tarball.
"""

load("//rules:providers.bzl", "ImageInfo", "StorePathInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "SCHEMA_VERSION", "TOOL_ATTRS", "base_blobs_of", "check_ownership", "default_image_name", "label_fail", "record_requirements", "request_launcher", "run_strata", "single_image_file", "validate_config", "with_base_blobs")
load(":image_layers.bzl", "build_layers", "image_request", "layer_files", "layering_of")
load(":sbom.bzl", "sbom_action")

def _file_path(f):
    return f.path

def _sbom(ctx, layers, image):
    return sbom_action(
        ctx,
        layers.name,
        image,
        store_infos = layers.store_infos,
        base = layers.base,
        base_file = layers.base_inputs[0] if layers.base else None,
        own_layers = layers.own_layers,
    )

def _image_impl(ctx, roots, copy_roots, layering):
    layers = build_layers(ctx, roots, copy_roots, layering, joins = True)
    inputs = depset(layer_files(layers) + layers.join_sources + layers.base_inputs)

    # The image record (digests): what a plain build makes. It reads descriptors,
    # not layer bytes, so it may be shared through a remote cache.
    info = ctx.actions.declare_file(ctx.label.name + ".image.json")
    req = image_request(ctx, layers, _file_path)
    req["outputs"] = {"image_info": info.path}
    run_strata(ctx, "ImageAssemble", req, inputs, [info], "image", execution_requirements = record_requirements(ctx.attr.created))

    # The OCI layout, written from the same request when something needs the bytes
    # (output group `oci`, image_push, image_load, a derived image, ...).
    oci = ctx.actions.declare_directory(ctx.label.name + ".oci")
    layout_req = dict(req, outputs = {"oci_layout": oci.path}, record = info.path)
    run_strata(ctx, "ImageAssemble", layout_req, depset([info], transitive = [inputs]), [oci], "OCI layout of", execution_requirements = NO_REMOTE_CACHE, request_name = ctx.label.name + ".layout.request.json")

    # The docker-archive, likewise, straight from the layers (a shallow base's from its
    # BaseBlobs), not through the layout: output group `tarball`, image_load, ...
    archive = ctx.actions.declare_file(ctx.label.name + ".tar")
    archive_req = with_base_blobs(dict(req, outputs = {"docker_archive": archive.path}, record = info.path), layers.base_blobs)
    run_strata(ctx, "ImageAssemble", archive_req, depset([info], transitive = [inputs, layers.base_blobs]), [archive], "docker-archive of", execution_requirements = NO_REMOTE_CACHE, request_name = ctx.label.name + ".archive.request.json")
    sbom = _sbom(ctx, layers, struct(request = {"image": oci.path}, inputs = [oci]))
    return [
        DefaultInfo(files = depset([info])),
        OutputGroupInfo(
            oci = depset([oci]),
            image_info = depset([info]),
            tarball = depset([archive]),
            layers = depset(layer_files(layers)),
            sbom = sbom.files,
        ),
        ImageInfo(
            docker_archive = archive,
            oci_layout = oci,
            image_info = info,
            name = layers.name,
            tag = ctx.attr.tag,
            architecture = ctx.attr.architecture,
            store_paths = layers.closure,
            sbom = sbom.files,
            sbom_layout = sbom.layout,
            base_blobs = layers.base_blobs,
        ),
    ]

def _layered_image_impl(ctx):
    return _image_impl(ctx, ctx.attr.contents, False, layering_of(ctx))

def _docker_image_impl(ctx):
    # buildImage copies copyToRoot's files to / and puts their closure in one layer.
    return _image_impl(ctx, ctx.attr.copy_to_root, True, [["popularity_contest"], ["limit_layers", 1]])

# Every value is shell_quote()d: no label or file name is read as shell syntax.
_STREAM_SCRIPT = """#!/bin/sh
# stream_layered_image (written by @strata//rules/private:image.bzl): writes the image's
# docker-archive to stdout. Usage: <this script> > image.tar, or | docker load
set -eu
cd "${{RUNFILES_DIR:-$0.runfiles}}/"{workspace} 2>/dev/null || cd "$0.runfiles/"{workspace}
exec {tool} action StreamImage @{request} "$@"
"""

def _short_path(f):
    return f.short_path

def _stream_layered_image_impl(ctx):
    layers = build_layers(ctx, ctx.attr.contents, False, layering_of(ctx), joins = True)
    req = image_request(ctx, layers, _short_path)
    req["output"] = "-"
    req["schema_version"] = SCHEMA_VERSION
    # A shallow base's layers: the stream holds their bytes, so they come with it.
    blob_dirs = layers.base_blobs.to_list()
    if blob_dirs:
        req["base_blobs"] = [d.short_path for d in blob_dirs]
    data = layer_files(layers) + layers.join_sources + layers.base_inputs + blob_dirs
    exe, runfiles = request_launcher(ctx, _STREAM_SCRIPT, req, ".stream.json", data)

    # No layout is stored: the Sbom action works the image out from the same request.
    image = struct(request = {"assemble": image_request(ctx, layers, _file_path)}, inputs = layer_files(layers) + layers.join_sources + layers.base_inputs)
    sbom = _sbom(ctx, layers, image)
    return [
        # The layers are default outputs too: `build` makes them (the cached unit) in both engines.
        DefaultInfo(executable = exe, files = depset([exe] + layer_files(layers)), runfiles = runfiles),
        OutputGroupInfo(layers = depset(layer_files(layers)), sbom = sbom.files),
    ]

_COMMON_ATTRS = {
    "config": attr.string(doc = "Image config as JSON (the defs.bzl macros take a dict): Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Volumes, Labels, ... Env is merged with the base image's, last wins."),
    "from_image": attr.label(allow_files = True, doc = "Base image: an image target, a pull_image repository's image, or a docker-archive / OCI layout file."),
    "from_image_name": attr.string(doc = "Pick this repository name from a multi-image base archive."),
    "from_image_tag": attr.string(doc = "Pick this tag (with from_image_name) from a multi-image base archive."),
    "files": attr.label_keyed_string_dict(allow_files = True, doc = "Plain files → absolute destination in the image's top layer (a destination ending in / takes basenames); mode 0644 (put programs in a store_path with `executables`)."),
    "extra_commands": attr.string(doc = "Shell run by /bin/sh -e in the top layer's root (not chrooted) after contents are placed, e.g. \"mkdir -m 1777 tmp\"; `$out` is that root."),
    "fake_root_commands": attr.string(doc = "Shell run under fakeroot after extra_commands: its chown/chmod are what the layer records, e.g. \"chown 1000:1000 home/user\"."),
    "enable_fakechroot": attr.bool(doc = "Run fake_root_commands chrooted in the layer root (proot), contents bound at their store paths; /bin/sh must be in the layer."),
    "keep_contents_dirlinks": attr.bool(doc = "docker_image: copy copy_to_root as buildImage's `rsync -aK` (keepContentsDirlinks): links are copied as links, and a directory arriving where an earlier path has a link to a directory (lib -> usr/lib) goes into the link's target. Default: `rsync -ak`, a link to a directory is copied as the directory, and a later path's directory replaces an earlier path's link."),
    "uid": attr.int(default = 0, doc = "Owner uid of the top layer's entries (those fake_root_commands left to root)."),
    "gid": attr.int(default = 0, doc = "Owner gid of the top layer's entries (those fake_root_commands left to root)."),
    "uname": attr.string(doc = "Owner user name recorded in the top layer's tar headers."),
    "gname": attr.string(doc = "Owner group name recorded in the top layer's tar headers."),
    "mtime": attr.int(default = 1, doc = "mtime (seconds since the epoch) of every entry of the top layer."),
    "created": attr.string(doc = "Image creation time, RFC 3339 (e.g. \"2024-01-01T00:00:00Z\"); default 1970-01-01T00:00:01Z. \"now\" is the time the image action runs: not reproducible, so that action is tagged `no-cache` (no disk or remote cache holds it; a no-op build keeps the image, a build after `clean` or a change makes a new one)."),
    "image_name": attr.string(doc = "Repository name of the image, as `docker load` names it (`<image_name>:<tag>`) and in the OCI layout's ref; default <package>/<name>."),
    "tag": attr.string(doc = "Image tag; default: a hash of the image's content (as dockerTools)."),
    "architecture": attr.string(default = "x86_64", doc = "Target architecture (x86_64, aarch64, ... or GOARCH names: amd64, arm64)."),
    "compressor": attr.string(default = "gzip", values = ["none", "gzip", "zstd"], doc = "Compression of the image's own layers (store path layers are cached uncompressed and compressed here): gzip loads everywhere; zstd is smaller, but Docker 20.10 cannot load it; none for a registry or loader that compresses itself."),
    "include_store_paths": attr.bool(default = True, doc = "Include the store paths' layers; False for images run with a bind-mounted store."),
    "include_nix_db": attr.bool(doc = "Add a layer with /nix/var/nix/db (ValidPaths and Refs of the image's store paths) and /nix/var/nix/gcroots/docker links to the contents, so nix-store works in the image (buildImageWithNixDb; the NixDb action). It counts against max_layers."),
    "max_layers": attr.int(default = 100, doc = "Most layers the image may have, counting base layers and the top layer."),
}

_LAYERED_ATTRS = {
    "contents": attr.label_list(providers = [StorePathInfo], doc = "Store paths of the image; their closure becomes layers and they are symlinked at / in the top layer."),
    "layering": attr.string(doc = "\"popularity\" (default, as dockerTools), \"auto_layer\", or a layering pipeline as JSON (see strata.layering.pipeline; the layered_image macro takes a list)."),
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
    extra_commands = "mkdir -m 1777 tmp",
)
```
Output: `app.image.json`, the image record (name, tag, created and every
digest): a plain build makes the layers and this record, and writes no image.
Written only when asked for (or when a rule needs them, such as `image_push`,
`image_load` or an image built on this one): output group `oci`, `app.oci`
(OCI image layout directory, `--output_groups=+oci`); output group `tarball`,
`app.tar` (docker-archive, `docker load -i`); output groups `image_info`,
`layers` (the cached layers) and `sbom` (`app.spdx.json`, SPDX 2.3, and
`app.cdx.json`, CycloneDX 1.5: the image's store paths, base image and own
files).""",
    attrs = dict(TOOL_ATTRS, **dict(_COMMON_ATTRS, **_LAYERED_ATTRS)),
)

stream_layered_image_rule = rule(
    implementation = _stream_layered_image_impl,
    executable = True,
    doc = """dockerTools.streamLayeredImage: an executable that writes the image's docker-archive to stdout.

Only the layers are built and cached; the image tarball is never stored. With
`compressor = "none"`, a layer grouping several store paths is not stored either:
it is kept as a recipe (which byte ranges of which store path layers) and read
from those layers as the image streams, as nixpkgs' script reads the store.

```starlark
load("@strata//rules:defs.bzl", "stream_layered_image")
stream_layered_image(name = "stream", contents = [":hello"], config = {"Cmd": ["/bin/hello"]})
```
`strata run //app:stream > app.tar`, `bazel run //app:stream | docker load`.
The bytes are those layered_image stores for the same attributes.""",
    attrs = dict(TOOL_ATTRS, **dict(_COMMON_ATTRS, **_LAYERED_ATTRS)),
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
docker_image(
    name = "app",
    copy_to_root = [":busybox", ":app_files"],
    run_as_root = "mkdir -p /data && chown 1000:1000 /data",
    include_nix_db = True,
)
```
Outputs as layered_image's: `hello.image.json`; the OCI layout `hello.oci` in
output group `oci`, the docker-archive `hello.tar` in output group `tarball`.""",
    attrs = dict(TOOL_ATTRS, **dict(_COMMON_ATTRS, **{
        "copy_to_root": attr.label_list(providers = [StorePathInfo], doc = "Store paths whose files are copied to /, in order (their closure is in the image too). A single-file store path has no tree to copy and is an error, as in Nix's buildEnv."),
        "run_as_root": attr.string(doc = "Shell commands run as root (`/bin/sh -ec`) in the image's root filesystem (base, store paths, copy_to_root, Nix DB) without a VM; their changes are one more layer (runAsRoot; see run_as_root). Needs /bin/sh in the image, proot, and a build running as root."),
    })),
)
