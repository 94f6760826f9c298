"""store_path: a Nix-style store path from workspace files or other targets' outputs."""

load("//rules:providers.bzl", "StorePathInfo")
load(":common.bzl", "TOOL_ATTRS", "check_dest", "check_one_place", "check_symlink_targets", "label_fail", "run_strata", "store_path_name")

def store_tree(ctx, info, layer, what):
    """The path's content as a directory, unpacked from its layer by a StoreTree action.

    Only something that asks for the tree (a user building the target, a rule
    reading `StorePathInfo.tree`) runs it: images read the layer.
    """
    tree = ctx.actions.declare_directory(ctx.label.name + ".store")
    run_strata(ctx, "StoreTree", {"info": info.path, "layer": layer.path, "output": tree.path}, depset([info, layer]), [tree], what)
    return tree

def store_path_providers(name, store_dir, info, tree, layer, descriptor, refs, listing = None):
    """The providers every store-path rule returns: files, output groups, StorePathInfo."""
    me = struct(info = info, tree = tree, layer = layer, descriptor = descriptor, listing = listing)
    return [
        DefaultInfo(files = depset([info, tree])),
        OutputGroupInfo(info = depset([info]), layer = depset([layer, descriptor] + ([listing] if listing else []))),
        StorePathInfo(
            name = name,
            store_dir = store_dir,
            info = info,
            tree = tree,
            layer = layer,
            descriptor = descriptor,
            listing = listing,
            closure = depset([me], transitive = [r.closure for r in refs]),
        ),
    ]

def build_store_path(ctx, name, contents, inputs, refs, links = []):
    """Register the action making store path `name` of `contents` (and of `links` into
    another store path), and its tree; return the path's providers.

    `inputs` are the files `contents` reads; `refs` the StorePathInfo of its references.
    """
    info = ctx.actions.declare_file(ctx.label.name + ".storepath.json")
    layer = ctx.actions.declare_file(ctx.label.name + ".layer.tar")
    descriptor = ctx.actions.declare_file(ctx.label.name + ".layer.json")
    listing = ctx.actions.declare_file(ctx.label.name + ".listing.json")
    req = {
        "compressor": "none",
        "contents": contents,
        "name": name,
        "outputs": {"descriptor": descriptor.path, "info": info.path, "layer": layer.path, "listing": listing.path},
        "references": [r.info.path for r in refs],
        "store_dir": ctx.attr.store_dir,
    }
    mnemonic = "StorePath"
    if links:
        req["links"] = links
        mnemonic = "LinkedStorePath"
    run_strata(ctx, mnemonic, req, depset(inputs + [r.info for r in refs]), [info, layer, descriptor, listing], name)
    tree = store_tree(ctx, info, layer, name)
    return store_path_providers(name, ctx.attr.store_dir, info, tree, layer, descriptor, refs, listing)

def _store_path_impl(ctx):
    name = store_path_name(ctx)
    if not ctx.attr.store_dir.startswith("/") or ctx.attr.store_dir.endswith("/"):
        label_fail(ctx, "store_dir", "must be an absolute path without a trailing slash", repr(ctx.attr.store_dir), "use e.g. \"/nix/store\"")
    contents = []
    inputs = []
    for target, dest in ctx.attr.srcs.items():
        if dest:  # "" makes the store path a single file
            check_dest(ctx, "srcs", dest)
        files = target[DefaultInfo].files.to_list()
        if dest.endswith("/") or len(files) > 1:
            for f in files:
                contents.append({"dest": dest.rstrip("/") + "/" + f.basename, "mode": "0644", "src": f.path})
        else:
            contents.append({"dest": dest, "mode": "0644", "src": files[0].path})
        inputs.extend(files)
    check_symlink_targets(ctx, "symlinks", ctx.attr.symlinks)
    for dest in sorted(ctx.attr.symlinks.keys()):
        check_dest(ctx, "symlinks", dest)
        contents.append({"dest": dest, "target": ctx.attr.symlinks[dest], "type": "symlink"})
    check_one_place(ctx, [("symlinks" if c.get("type") else "srcs", c["dest"]) for c in contents])
    by_dest = {c["dest"]: c for c in contents}  # one entry a destination (checked above)
    for dest in ctx.attr.executables:
        found = by_dest.get(dest)
        if not found:
            label_fail(ctx, "executables", "'%s' is not a destination in srcs" % dest, repr(dest), "list destinations of srcs")
        found["mode"] = "0755"
    if not contents:
        label_fail(ctx, "srcs", "a store path needs content", "{}", "map at least one file to a destination")
    refs = [d[StorePathInfo] for d in ctx.attr.deps]
    for r in refs:
        if r.store_dir != ctx.attr.store_dir:
            label_fail(ctx, "deps", "reference lives in another store directory", r.store_dir, "build every path for " + ctx.attr.store_dir)
    return build_store_path(ctx, name, contents, inputs, refs)

store_path = rule(
    implementation = _store_path_impl,
    doc = """A content-addressed store path, `<store_dir>/<hash>-<name>`, named as `nix-store --add` would.

Its content comes from files mapped to destinations inside the path; its
references are other `store_path` targets (checked: a mention of an
undeclared store path fails the build). One action builds the path and its
own layer, so every image that contains the path shares that cached layer.

```starlark
genrule(name = "hello_bin", srcs = ["hello.c"], outs = ["hello"],
        cmd = "gcc -static -O2 -s -o $@ $<")
store_path(
    name = "hello",
    srcs = {":hello_bin": "bin/hello"},
    executables = ["bin/hello"],
)
```""",
    attrs = dict(TOOL_ATTRS, **{
        "srcs": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "Files → destination inside the store path (\"bin/hello\"). A destination ending in `/` (or a target with several files) takes the files by basename. A single file mapped to \"\" makes the store path that file.",
        ),
        "deps": attr.label_list(
            providers = [StorePathInfo],
            doc = "References: store paths this one mentions (their names must appear in its bytes to count).",
        ),
        "symlinks": attr.string_dict(
            doc = "Destination → symlink target, e.g. {\"bin/sh\": \"busybox\"}. A relative target must stay inside the store path (above it is the store directory); write others as absolute paths.",
        ),
        "executables": attr.string_list(
            doc = "Destinations (from srcs) to mark executable. Every other file is not executable: Bazel marks all outputs executable, so a source's own bit cannot be trusted.",
        ),
        "path_name": attr.string(
            doc = "The name after `<hash>-`; default: the target name.",
        ),
        "store_dir": attr.string(
            default = "/nix/store",
            doc = "The store directory; part of the hash, so the same content gets another name elsewhere.",
        ),
    }),
)
