"""What an image is made of: its base, its store path layers (grouped), its customisation
layer and the Nix DB / run_as_root layers, and the request that assembles them.

Shared by docker_image, layered_image and stream_layered_image (image.bzl);
`image_source` also by export_image.
"""

load("//rules:providers.bzl", "ImageInfo", "StorePathInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "SCHEMA_VERSION", "TOOL_ATTRS", "base_blobs_of", "check_ownership", "default_image_name", "docker_archive_action", "image_requirements", "label_fail", "request_launcher", "run_strata", "single_image_file", "validate_config")
load(":nix.bzl", "nix_db_layer")
load(":run_as_root.bzl", "run_as_root_layer")

def image_source(ctx, attr_name, dep, name = ""):
    """(base request {"path", "name"}, file) for an image dependency: an image target or one file."""
    if ImageInfo in dep:
        info = dep[ImageInfo]

        # The OCI layout: read without extracting layers, blobs kept verbatim.
        f = info.oci_layout or info.docker_archive
        return {"name": name, "path": f.path}, f
    f = single_image_file(ctx, attr_name, dep)
    return {"name": name, "path": f.path}, f

def _base(ctx):
    if not ctx.attr.from_image:
        return None, []
    name = ctx.attr.from_image_name
    if ctx.attr.from_image_tag:
        if not name:
            label_fail(ctx, "from_image_tag", "needs from_image_name", repr(ctx.attr.from_image_tag), "set from_image_name too")
        name = "%s:%s" % (name, ctx.attr.from_image_tag)
    base, f = image_source(ctx, "from_image", ctx.attr.from_image, name)
    return base, [f]

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
    seen = {}
    for entry in out:
        if entry["dest"] in seen:
            label_fail(ctx, "files", "two files for one destination (%s and %s)" % (seen[entry["dest"]], entry["src"]), repr(entry["dest"]), "give each file a destination of its own")
        seen[entry["dest"]] = entry["src"]
    return out, inputs

def layering_of(ctx):
    text = ctx.attr.layering
    if not text:
        return None
    if not text.startswith("["):
        if text not in ("popularity", "auto_layer"):
            label_fail(ctx, "layering", "unknown layering strategy", repr(text), "use \"popularity\", \"auto_layer\" or a pipeline like [[\"popularity_contest\"], [\"limit_layers\", 50]]")
        return text
    steps = json.decode(text)
    if not steps or [s for s in steps if type(s) != "list"]:
        label_fail(ctx, "layering", "must be a strategy name or a list of pipeline steps", text, "e.g. [[\"popularity_contest\"], [\"limit_layers\", 99]]")
    return steps

def _run_as_root_script(ctx):
    return getattr(ctx.attr, "run_as_root", "")

def _extra_layers(ctx):
    """Layers besides the base, store path and customisation layers: Nix DB, run_as_root."""
    return (1 if ctx.attr.include_nix_db else 0) + (1 if _run_as_root_script(ctx).strip() else 0)

def _common_checks(ctx):
    check_ownership(ctx)
    config = validate_config(ctx, ctx.attr.config)
    least = 2 + _extra_layers(ctx)
    if ctx.attr.max_layers < least:
        label_fail(ctx, "max_layers", "must leave room for a customisation layer and one store path layer" + (" besides the Nix DB / run_as_root layers" if least > 2 else ""), ctx.attr.max_layers, "use at least %d (default 100)" % least)
    if ctx.attr.mtime < 0:
        label_fail(ctx, "mtime", "must not be negative", ctx.attr.mtime, "use seconds since the epoch (default 1)")
    return config

def _listing(spi):
    """The path's listing file, or None (`nix_store_import`, or a StorePathInfo made by a
    rule written before the field existed)."""
    return getattr(spi, "listing", None)

def _read_layer(spi, inputs, extra):
    """A request item reading a store path from its layer (names from its listing, if it
    has one); appends the files it reads to `inputs`."""
    item = dict(extra, info = spi.info.path, layer = spi.layer.path)
    inputs.extend([spi.info, spi.layer])
    listing = _listing(spi)
    if listing:
        item["listing"] = listing.path
        inputs.append(listing)
    return item

def _store_layer(e):
    item = {"blob": e.layer.path, "descriptor": e.descriptor.path, "info": e.info.path}
    listing = _listing(e)
    if listing:
        item["listing"] = listing.path
    return item

def build_layers(ctx, roots, copy_roots, layering, joins = False):
    """Run CustomizationLayer and LayerGroups; return a struct for ImageAssemble / StreamImage.

    `joins`: LayerGroups keeps uncompressed grouped layers as recipes over the store path
    layers (`join_sources` of the struct): StreamImage reads them as it streams, and
    ImageAssemble writes them out only for an image's OCI layout.
    """
    config = _common_checks(ctx)
    spis = [c[StorePathInfo] for c in roots]
    closure = depset(transitive = [s.closure for s in spis])
    entries = closure.to_list()
    base, base_inputs = _base(ctx)
    base_blobs = base_blobs_of([ctx.attr.from_image])

    # 1. The customisation layer.
    # Each path is read from its own layer, never from a tree: the layer file reaches the
    # action byte for byte under every engine and sandbox. buildImage copies (rsync -ak, or
    # -aK with keep_contents_dirlinks); buildLayeredImage joins (symlinkJoin, lndir).
    contents = []
    inputs = []
    for s in spis:
        contents.append(_read_layer(s, inputs, {} if copy_roots else {"join": "link"}))
    files, file_inputs = _files(ctx)
    custom = ctx.actions.declare_file(ctx.label.name + ".custom.tar")
    custom_desc = ctx.actions.declare_file(ctx.label.name + ".custom.json")
    req = {
        "compressor": ctx.attr.compressor,
        "contents": contents,
        "descriptor": custom_desc.path,
        "enable_fakechroot": ctx.attr.enable_fakechroot,
        "extra_commands": ctx.attr.extra_commands,
        "fake_root_commands": ctx.attr.fake_root_commands,
        "files": files,
        "gid": ctx.attr.gid,
        "gname": ctx.attr.gname,
        "keep_dirlinks": ctx.attr.keep_contents_dirlinks,
        "mtime": ctx.attr.mtime,
        "output": custom.path,
        "uid": ctx.attr.uid,
        "uname": ctx.attr.uname,
    }
    if copy_roots:
        # rsync -k copies a link to a directory as the directory, also through other store paths.
        req["closure"] = [_read_layer(e, inputs, {}) for e in entries]
    run_strata(ctx, "CustomizationLayer", req, depset(inputs + file_inputs), [custom, custom_desc], "customisation layer of")

    # 2. The store path layers, grouped.
    groups = ctx.actions.declare_directory(ctx.label.name + ".layers")
    req = {
        "architecture": ctx.attr.architecture,
        "closures": [s.info.path for s in spis],
        "compressor": ctx.attr.compressor,
        "config": config,
        "include_store_paths": ctx.attr.include_store_paths,
        "max_layers": ctx.attr.max_layers,
        "output": groups.path,
        "store_layers": [_store_layer(e) for e in entries],
    }
    if layering != None:
        req["layering"] = layering
    if base:
        req["base"] = base
    if _extra_layers(ctx):
        # The Nix DB and run_as_root layers count against max_layers too.
        req["base_layers"] = _extra_layers(ctx)

    # run_as_root's script runs on the grouped layers' bytes: it needs them written.
    join_sources = [e.layer for e in entries] if joins and not _run_as_root_script(ctx).strip() else []
    if join_sources:
        req["joins"] = True
    run_strata(
        ctx,
        "LayerGroups",
        req,
        depset(base_inputs + [s.info for s in spis] + [x for e in entries for x in (e.info, e.layer, e.descriptor)] + [f for f in [_listing(e) for e in entries] if f]),
        [groups],
        "store path layers of",
        # Merged or compressed groups are this image's own bytes, made from the shared
        # store path layers: uploading them would store most of the closure twice. Kept
        # as recipes, and with single-path layers being the store path layers' own
        # bytes, the directory adds nothing to a remote cache but its descriptors.
        execution_requirements = {} if join_sources and ctx.attr.compressor == "none" else NO_REMOTE_CACHE,
    )

    # 3. Layers on top of the store paths: the Nix DB (below the customisation
    # layer, so extra_commands could still change it), then run_as_root's.
    stack = [struct(blob = custom, descriptor = custom_desc)]
    if ctx.attr.include_nix_db:
        # The layer form: db.sqlite, schema and a gcroots/docker link per root.
        db = nix_db_layer(ctx, spis, spis, ctx.attr.compressor, owner = {"mtime": ctx.attr.mtime})
        stack = [db] + stack
    script = _run_as_root_script(ctx)
    own_layers = [(custom, "customisation")]
    if script.strip():
        # runAsRoot: the script sees base + store paths + the layers above, as dockerTools' VM does.
        stack.append(run_as_root_layer(
            ctx,
            script,
            base_archive = base_inputs[0] if base else None,
            base_name = base["name"] if base else "",
            layers = stack,
            layers_dir = groups,
            compressor = ctx.attr.compressor,
            mtime = ctx.attr.mtime,
            base_blobs = base_blobs,
        ))
        own_layers.append((stack[-1].blob, "run_as_root"))
    elif script:
        label_fail(ctx, "run_as_root", "must not be blank", repr(script), "write shell commands, or leave run_as_root unset")
    return struct(
        config = config,
        base = base,
        base_inputs = base_inputs,
        base_blobs = base_blobs,
        custom = custom,
        custom_desc = custom_desc,
        groups = groups,
        join_sources = join_sources,
        stack = stack,
        closure = closure,
        name = default_image_name(ctx),
        own_layers = own_layers,
        # What the SBOM lists: no store path is in an image without store path layers.
        store_infos = [s.info for s in spis] if ctx.attr.include_store_paths else [],
    )

def layer_files(layers):
    """Every file of the image's own layers (the groups directory and the stack)."""
    return [layers.groups] + [f for l in layers.stack for f in (l.blob, l.descriptor)]

def _groups_item(layers, path):
    item = {"dir": path(layers.groups)}
    if layers.join_sources:
        item["join_sources"] = [path(f) for f in layers.join_sources]
    return item

def image_request(ctx, layers, path):
    """The ImageAssemble / StreamImage request (without outputs); `path(file)` spells a path."""
    req = {
        "architecture": ctx.attr.architecture,
        "config": layers.config,
        "layers": [_groups_item(layers, path)] + [{"blob": path(l.blob), "descriptor": path(l.descriptor)} for l in layers.stack],
        "name": layers.name,
    }
    if layers.base:
        req["base"] = {"name": layers.base["name"], "path": path(layers.base_inputs[0])}
    if ctx.attr.created:
        req["created"] = ctx.attr.created
    if ctx.attr.tag:
        req["tag"] = ctx.attr.tag
    return req
