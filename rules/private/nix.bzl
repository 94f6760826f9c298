"""The Nix database of an image (buildImageWithNixDb / `include_nix_db`).

`nix_db_layer(ctx, ...)` is the hook image rules call when `include_nix_db`
is set: it runs the `NixDb` action and returns the layer to put on top of the
store path layers. `nix_db` is the same as a rule, for images assembled by
hand (its output is a layer: `LayerInfo`).
"""

load("//rules:providers.bzl", "LayerInfo", "StorePathInfo")
load(":common.bzl", "TOOL_ATTRS", "label_fail", "run_strata")

def nix_db_layer(ctx, store_paths, roots, compressor = "gzip", prefix = None, owner = None):
    """Register the NixDb action; return struct(blob, descriptor) of the layer.

    Args:
      ctx: the rule context (needs the `_strata` attribute of TOOL_ATTRS).
      store_paths: closure entries (structs with `.info`, as in StorePathInfo.closure)
        or StorePathInfo providers: every path of the image; their closures are registered.
      roots: StorePathInfo providers (or structs with `.info`) that get a
        /nix/var/nix/gcroots/docker link: the image's contents.
      compressor: "none", "gzip" or "zstd".
      prefix: output file prefix (default: the target name).
      owner: optional dict of uid, gid, uname, gname, mtime for the layer entries.

    Returns:
      struct(blob = File, descriptor = File)
    """
    prefix = prefix or ctx.label.name
    blob = ctx.actions.declare_file(prefix + ".nixdb.tar")
    descriptor = ctx.actions.declare_file(prefix + ".nixdb.json")
    infos = depset([s.info for s in store_paths] + [r.info for r in roots]).to_list()
    req = {
        "compressor": compressor,
        "descriptor": descriptor.path,
        "output": blob.path,
        "roots": sorted(depset([r.info.path for r in roots]).to_list()),
        "store_paths": sorted(depset([s.info.path for s in store_paths]).to_list()),
    }
    if owner:
        req.update(owner)
    run_strata(ctx, "NixDb", req, depset(infos), [blob, descriptor], "Nix database of")
    return struct(blob = blob, descriptor = descriptor)

def _nix_db_impl(ctx):
    if not ctx.attr.contents:
        label_fail(ctx, "contents", "a Nix database needs store paths", "[]", "list the image's store_path targets")
    if ctx.attr.registration_time < 0:
        label_fail(ctx, "registration_time", "must not be negative", ctx.attr.registration_time, "use e.g. 1")
    spis = [c[StorePathInfo] for c in ctx.attr.contents]
    owner = {"mtime": ctx.attr.mtime, "registration_time": ctx.attr.registration_time}
    layer = nix_db_layer(ctx, spis, spis, ctx.attr.compressor, owner = owner)
    return [
        DefaultInfo(files = depset([layer.blob, layer.descriptor])),
        LayerInfo(blob = layer.blob, descriptor = layer.descriptor),
    ]

nix_db = rule(
    implementation = _nix_db_impl,
    doc = """A layer with `/nix/var/nix/db` (db.sqlite, schema) and gcroots for `contents` and their closure.

Put it on top of the store path layers of an image so `nix-store -q --references`,
`nix-store --verify --check-contents` and `nix-collect-garbage` work inside it.
The database bytes are reproducible (fixed registrationTime, rows in path order,
no WAL, VACUUMed).

```starlark
load("@strata//rules:defs.bzl", "nix_db", "store_path")
store_path(name = "app", srcs = {":app_bin": "bin/app"}, deps = [":lib"])
nix_db(name = "app_db", contents = [":app"])   # registers app and lib; gcroot for app
```""",
    attrs = dict(TOOL_ATTRS, **{
        "contents": attr.label_list(providers = [StorePathInfo], doc = "Store paths to register (with their closures); each gets a gcroots/docker link."),
        "registration_time": attr.int(default = 1, doc = "ValidPaths.registrationTime of every path (seconds since the epoch); fixed for reproducibility."),
        "compressor": attr.string(default = "gzip", values = ["none", "gzip", "zstd"], doc = "Layer compression."),
        "mtime": attr.int(default = 1, doc = "mtime of every entry of the layer."),
    }),
)
