"""Nix: the database of an image, and store paths imported from a real Nix store.

`nix_db_layer(ctx, ...)` is the hook image rules call when `include_nix_db`
is set: it runs the `NixDb` action and returns the layer to put on top of the
store path layers. `nix_db` is the same as a rule, for images assembled by
hand (its output is a layer: `LayerInfo`).

`nix_store_import` (repository rule) imports paths of a real Nix store, with
their closure, as `nix_store_path` targets (`StorePathInfo`), usable in
`contents` / `copy_to_root` like any `store_path`.
"""

load("//rules:providers.bzl", "LayerInfo", "StorePathInfo")
load(":common.bzl", "SCHEMA_VERSION", "TOOL_ATTRS", "find_python", "label_fail", "run_strata", "sorted_dict")
load(":store_path.bzl", "store_path_providers", "store_tree")

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
        "compressor": attr.string(default = "gzip", values = ["none", "gzip", "zstd"], doc = "Compression of the database layer (gzip loads everywhere; Docker 20.10 cannot load zstd)."),
        "mtime": attr.int(default = 1, doc = "mtime of every entry of the layer."),
    }),
)

# -- store paths from a real Nix store ---------------------------------------------------

def _nix_store_path_impl(ctx):
    name = ctx.attr.path_name
    tree = store_tree(ctx, ctx.file.info, ctx.file.layer, name)
    refs = [d[StorePathInfo] for d in ctx.attr.deps]
    return store_path_providers(name, ctx.attr.store_dir, ctx.file.info, tree, ctx.file.layer, ctx.file.descriptor, refs)

nix_store_path = rule(
    implementation = _nix_store_path_impl,
    doc = """A store path imported by `nix_store_import` (its generated BUILD file declares these).

```starlark
nix_store_path(
    name = "hello-2.12",
    path_name = "hello-2.12",
    info = "paths/<hash>-hello-2.12.storepath.json",
    layer = "paths/<hash>-hello-2.12.layer.tar",
    descriptor = "paths/<hash>-hello-2.12.layer.json",
    deps = [":glibc-2.37"],
)
```
The layer and info were written from the real store at import; the `tree`
(for symlink-joining into an image's top layer) is unpacked from the layer.""",
    attrs = dict(TOOL_ATTRS, **{
        "info": attr.label(mandatory = True, allow_single_file = True, doc = "The path's info JSON (path, references, narHash, narSize, closure, store_dir)."),
        "layer": attr.label(mandatory = True, allow_single_file = True, doc = "The path's own uncompressed layer."),
        "descriptor": attr.label(mandatory = True, allow_single_file = True, doc = "Digests and size of `layer`."),
        "path_name": attr.string(mandatory = True, doc = "The name after `<hash>-`."),
        "store_dir": attr.string(default = "/nix/store", doc = "The store directory of the path."),
        "deps": attr.label_list(providers = [StorePathInfo], doc = "The paths it references (their targets in the same repository)."),
    }),
)

_IMPORT_BUILD_HEAD = """# Generated by nix_store_import (@{strata}//rules/private:nix.bzl). Do not edit.
load("@{strata}//rules/private:nix.bzl", "nix_store_path")

package(default_visibility = ["//visibility:public"])
"""

_IMPORT_PATH = """
nix_store_path(
    name = "{target}",
    path_name = "{name}",
    store_dir = "{store_dir}",
    info = "paths/{base}.storepath.json",
    layer = "paths/{base}.layer.tar",
    descriptor = "paths/{base}.layer.json",
    deps = [{deps}],
)
"""

def _nix_store_import_impl(rctx):
    attr = rctx.attr
    where = "@%s" % rctx.name
    if not attr.paths:
        fail("%s: attribute 'paths': no store paths to import (got []); list paths such as \"/nix/store/<hash>-hello-2.12\"" % where)
    env = rctx.os.environ
    store_dir = attr.store_dir or env.get("NIX_STORE_DIR") or "/nix/store"
    for p in attr.paths:
        if not p.startswith(store_dir + "/") or "/" in p[len(store_dir) + 1:]:
            fail("%s: attribute 'paths': not a path directly inside the store directory %s (got %r); give top-level store paths, or set store_dir" % (where, store_dir, p))
    nix_env = {"NIX_STORE_DIR": store_dir}
    state_dir = attr.state_dir or env.get("NIX_STATE_DIR", "")
    if state_dir:
        nix_env["NIX_STATE_DIR"] = state_dir
    req = {
        "env": nix_env,
        "nix_store": attr.nix_store,
        "output": "paths",
        "paths": sorted(attr.paths),
        "schema_version": SCHEMA_VERSION,
        "store_dir": store_dir,
    }
    rctx.file("request.json", json.encode(sorted_dict(req)) + "\n", executable = False)
    site = rctx.path(Label("@strata_tools//:BUILD.bazel")).dirname
    sources = rctx.path(Label("//python:BUILD")).dirname
    python = find_python(rctx, where)
    rctx.report_progress("importing %d Nix store path(s) and their closure" % len(attr.paths))
    res = rctx.execute(
        [python, "-B", "-s", "-m", "strata", "action", "NixStoreImport", "@request.json"],
        environment = {"PYTHONPATH": "%s:%s/site" % (sources, site), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout = attr.timeout,
        quiet = True,
    )
    if res.return_code != 0:
        fail("%s: importing %s failed (got exit %d: %s); fix the store settings (store_dir, state_dir) or the paths" % (where, ", ".join(attr.paths), res.return_code, res.stderr.strip()))
    index = json.decode(rctx.read("paths/index.json"))
    count = {}
    for p in index["paths"]:
        count[p["name"]] = count.get(p["name"], 0) + 1
    target = {}
    for p in index["paths"]:
        target[p["base"]] = p["name"] if count[p["name"]] == 1 else p["base"]
    strata = Label("//rules:BUILD").workspace_name or "strata"
    build = [_IMPORT_BUILD_HEAD.format(strata = strata)]
    for p in index["paths"]:
        build.append(_IMPORT_PATH.format(
            target = target[p["base"]],
            name = p["name"],
            store_dir = store_dir,
            base = p["base"],
            deps = ", ".join(["\":%s\"" % target[r] for r in p["references"]]),
        ))
    rctx.file("BUILD.bazel", "".join(build), executable = False)
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name, executable = False)

nix_store_import = repository_rule(
    implementation = _nix_store_import_impl,
    doc = """Imports paths of a real Nix store, with their closure, as `StorePathInfo` targets.

```starlark
load("@strata//rules:repositories.bzl", "nix_store_import")

nix_store_import(
    name = "nixpkgs_hello",
    paths = ["/nix/store/<hash>-hello-2.12"],
)
```
then `layered_image(..., contents = ["@nixpkgs_hello//:hello-2.12"])`. Every path
of the closure gets a target named after its name (`<hash>-<name>` when two share
a name). `nix-store -q` gives the closure, references and NAR hashes; each path's
content is checked against its recorded NAR hash and written as its own layer,
so images share it like any store path's layer.""",
    attrs = {
        "paths": attr.string_list(mandatory = True, doc = "Store paths to import (their closures come too), e.g. \"/nix/store/<hash>-hello-2.12\"."),
        "store_dir": attr.string(doc = "The store directory the paths are named in; default $NIX_STORE_DIR, else /nix/store."),
        "state_dir": attr.string(doc = "Nix's state directory (NIX_STATE_DIR: where the database is); default $NIX_STATE_DIR, else Nix's own default."),
        "nix_store": attr.string(default = "nix-store", doc = "The nix-store program (a name on PATH or an absolute path)."),
        "python": attr.string(doc = "Interpreter to run the strata tool with; default python3.11, then python3."),
        "timeout": attr.int(default = 3600, doc = "Seconds the import may take."),
    },
    environ = ["NIX_STORE_DIR", "NIX_STATE_DIR"],
)
