"""Shared helpers: the tool attribute, sorted JSON requests, running an action or a launcher."""

load("//rules:providers.bzl", "BaseBlobsInfo", "ImageInfo")
load(":names.bzl", "name_problem", "shell_quote")

SCHEMA_VERSION = 1

# Remote cache policy: whole-image actions (layouts, archives, merges, exports,
# indexes) are not uploaded; layer blobs are the shared unit.
NO_REMOTE_CACHE = {"no-remote-cache": "1"}

def image_requirements(created):
    """Execution requirements of an action writing a whole image created at `created`.

    Never uploaded (NO_REMOTE_CACHE). With `created = "now"` the output depends on
    the clock, so no cache may hold it either (`no-cache`, in both engines): a
    rebuild after `bazel clean` / `strata clean` takes a new time instead of
    returning an old image; a no-op build keeps the image it has.
    """
    if created == "now":
        return dict(NO_REMOTE_CACHE, **{"no-cache": "1"})
    return NO_REMOTE_CACHE

def record_requirements(created):
    """Execution requirements of an action writing an image record (digests only).

    Cached everywhere, remote caches included: it holds no layer bytes. With
    `created = "now"`, `no-cache`, as image_requirements says.
    """
    return {"no-cache": "1"} if created == "now" else {}

TOOL_ATTRS = {
    "_strata": attr.label(
        default = Label("@strata_tools//:strata"),
        executable = True,
        cfg = "host",
        doc = "The pinned strata tool (made by strata_dependencies()).",
    ),
}

def sorted_dict(d):
    """A copy of `d` with keys sorted, three levels deep (enough for requests and configs)."""
    out = {}
    for k in sorted(d.keys()):
        v = d[k]
        if type(v) == "dict":
            inner = {}
            for k2 in sorted(v.keys()):
                v2 = v[k2]
                if type(v2) == "dict":
                    v2 = {k3: v2[k3] for k3 in sorted(v2.keys())}
                inner[k2] = v2
            v = inner
        elif type(v) == "list":
            v = [({k2: x[k2] for k2 in sorted(x.keys())} if type(x) == "dict" else x) for x in v]
        out[k] = v
    return out

def run_strata(ctx, mnemonic, request, inputs, outputs, what, tools = [], execution_requirements = {}, request_name = None):
    """Write `request` (sorted, with schema_version) and run `strata action <mnemonic>` on it.

    The request is `<target>.<mnemonic>.request.json`, or `request_name` for a target that
    runs the same mnemonic twice.
    """
    req = dict(request)
    req["schema_version"] = SCHEMA_VERSION
    req_file = ctx.actions.declare_file(request_name or "%s.%s.request.json" % (ctx.label.name, mnemonic))
    ctx.actions.write(req_file, json.encode(sorted_dict(req)) + "\n")
    requirements = dict(execution_requirements)
    if "requires-network" not in requirements and "no-sandbox" not in requirements:
        # Bazel runs it in a persistent worker (strata.bazel_worker) where its strategy
        # allows: one Python per mnemonic, not one per action. The flag file (the request,
        # one line) is the last argument, as workers need.
        requirements["supports-workers"] = "1"
    ctx.actions.run(
        executable = ctx.executable._strata,
        arguments = ["action", mnemonic, "@" + req_file.path],
        inputs = depset([req_file], transitive = [inputs]),
        outputs = outputs,
        tools = tools,
        mnemonic = mnemonic,
        progress_message = "%s %s %s" % (mnemonic, what, label_str(ctx.label)),
        env = {"PATH": "/usr/bin:/bin"},
        execution_requirements = requirements,
    )
    return req_file

def request_launcher(ctx, script, request, suffix, data):
    """An executable named after the target (the output both engines expect) that runs
    `script` on `request`.

    `request` is written, sorted, to `<name><suffix>`; `script` is formatted with the
    quoted workspace name and the tool's and the request's runfiles paths. Returns the
    executable and its runfiles: `data`, the request and the tool with its own.
    """
    req_file = ctx.actions.declare_file(ctx.label.name + suffix)
    ctx.actions.write(req_file, json.encode(sorted_dict(request)) + "\n")
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(exe, script.format(
        workspace = shell_quote(ctx.workspace_name),
        tool = shell_quote(ctx.executable._strata.short_path),
        request = shell_quote(req_file.short_path),
    ), is_executable = True)
    runfiles = ctx.runfiles(files = data + [req_file, ctx.executable._strata])
    return exe, runfiles.merge(ctx.attr._strata[DefaultInfo].default_runfiles)

def base_blobs_of(deps):
    """depset of the directories holding the layer blobs of the shallow bases of `deps`
    (image targets, pulled images; None and plain files add nothing)."""
    sets = []
    for dep in deps:
        if dep == None:
            continue
        if BaseBlobsInfo in dep:
            sets.append(dep[BaseBlobsInfo].blobs)
        elif ImageInfo in dep and getattr(dep[ImageInfo], "base_blobs", None) != None:
            sets.append(dep[ImageInfo].base_blobs)
    return depset(transitive = sets)

# A /bin/sh function for run scripts that hand an OCI layout to podman or docker: on a
# shallow base the layout lacks the base's layers, and the tool needs a whole one.
WHOLE_LAYOUT_SH = """# whole_layout LAYOUT DEST BLOB_DIRS: DEST becomes LAYOUT (relative to here) made whole,
# links to its files and to the blobs of BLOB_DIRS (one directory a line, sha256/<hex>).
whole_layout() {
  mkdir "$2"
  cp -as "$PWD/$1/." "$2/"
  rm -f "$2/remote-blobs.json"
  printf '%s\\n' "$3" | while IFS= read -r dir; do
    for blob in "$PWD/$dir"/sha256/*; do
      if [ -f "$blob" ]; then ln -sf "$blob" "$2/blobs/sha256/"; fi
    done
  done
}
"""

def blob_dirs_word(base_blobs):
    """The directories of `base_blobs` (see `base_blobs_of`) as one shell word, a line each."""
    return shell_quote("\n".join([d.short_path for d in base_blobs.to_list()]))

def with_base_blobs(request, base_blobs):
    """`request` with `base_blobs` (the paths of those directories) when there are any."""
    dirs = [d.path for d in base_blobs.to_list()]
    return dict(request, base_blobs = dirs) if dirs else request

def docker_archive_action(ctx, layout, base_blobs = depset()):
    """Register `ImageArchive`: the docker-archive (`<name>.tar`) of the OCI layout `layout`.

    Like every action, it runs only when something needs its output: the
    `tarball` output group, `image_load`, `merge_images` of a docker-archive.
    `base_blobs` (see `base_blobs_of`) are the layers of a shallow base it holds.
    """
    archive = ctx.actions.declare_file(ctx.label.name + ".tar")
    run_strata(
        ctx,
        "ImageArchive",
        with_base_blobs({"image": layout.path, "output": archive.path}, base_blobs),
        depset([layout], transitive = [base_blobs]),
        [archive],
        "docker-archive of",
        execution_requirements = NO_REMOTE_CACHE,
    )
    return archive

def label_fail(ctx, attr_name, what, got, fix):
    """fail() in strata's error shape, naming the target and attribute."""
    fail("%s: attribute '%s': %s (got %s); %s" % (label_str(ctx.label), attr_name, what, got, fix))

def check_dest(ctx, attr_name, dest):
    """label_fail() unless `dest` is a relative path inside a store path (no `..`)."""
    if not dest or dest.startswith("/") or ".." in dest.split("/"):
        label_fail(ctx, attr_name, "destinations are relative paths inside the store path", repr(dest), "write e.g. \"etc/passwd\"")

def check_one_place(ctx, placed):
    """label_fail() when two (attribute, destination) pairs of `placed` name one destination:
    the later would silently replace the earlier in the layer."""
    seen = {}
    for attr_name, dest in placed:
        key = dest.rstrip("/")
        if key in seen:
            label_fail(ctx, attr_name, "two entries for one destination (the other in '%s')" % seen[key], repr(dest), "give each entry a destination of its own")
        seen[key] = attr_name

def check_name(ctx, attr_name, kind, value):
    """label_fail() unless `value` is a valid `kind` name ("registry", "repository", "tag", "reference")."""
    problem = name_problem(kind, value)
    if problem:
        fail("%s: attribute '%s': %s" % (label_str(ctx.label), attr_name, problem))

_STORE_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="

def store_path_name(ctx):
    """The store path's name (`path_name`, else the target's), checked as Nix checks it."""
    name = ctx.attr.path_name or ctx.label.name
    bad = [c for c in name.elems() if c not in _STORE_NAME_CHARS]
    if bad or name.startswith(".") or len(name) > 211:
        label_fail(ctx, "path_name" if ctx.attr.path_name else "name", "invalid store path name", repr(name), "use only letters, digits and + - . _ ? =, not starting with '.', at most 211 characters")
    return name

def default_image_name(ctx):
    """`image_name`, else `<package>/<name>`: the repository name an image carries."""
    return ctx.attr.image_name or ("%s/%s" % (ctx.label.package, ctx.label.name)).lstrip("/")

def single_image_file(ctx, attr_name, dep, what = "must be an image target or one docker-archive / OCI layout"):
    """The one file (docker-archive or OCI layout) of `dep`, a target without ImageInfo."""
    files = dep[DefaultInfo].files.to_list()
    if len(files) != 1:
        label_fail(ctx, attr_name, what, "%d files" % len(files), "point at one image")
    return files[0]

def label_str(label):
    """`//pkg:name` (or `@repo//pkg:name`); composed, as str(label) differs between engines."""
    repo = getattr(label, "workspace_name", "")
    return "%s//%s:%s" % ("@" + repo if repo else "", label.package, label.name)

def check_ownership(ctx):
    # (attr.int holds at most 2^31-1 in both engines, below uid_t's 2^32-1, which GNU tar needs)
    for a in ("uid", "gid"):
        v = getattr(ctx.attr, a)
        if v < 0:
            label_fail(ctx, a, "must not be negative", v, "use 0 or a positive id")

def check_symlink_targets(ctx, attr_name, links):
    """label_fail() for a relative symlink target that climbs out of its store path.

    Above a store path is the store directory, which the path does not own: such a link
    reaches `<store_dir>/...` (e.g. `bin/x -> ../../../etc/passwd` is /nix/etc/passwd), never
    what was meant. Absolute targets are taken as written.
    """
    for dest in sorted(links.keys()):
        target = links[dest]
        if target.startswith("/"):
            continue
        here = [p for p in ctx.attr.store_dir.split("/") if p] + ["<hash>-name"]
        here += [p for p in dest.split("/")[:-1] if p and p != "."]
        inside = len(here)
        lowest = inside
        for part in target.split("/"):
            if part == "..":
                here = here[:-1]
            elif part and part != ".":
                here.append(part)
            lowest = min(lowest, len(here))
        if lowest < len([p for p in ctx.attr.store_dir.split("/") if p]) + 1:
            meant = "/" + "/".join([p for p in target.split("/") if p and p not in (".", "..")])
            label_fail(
                ctx,
                attr_name,
                "the target of '%s' leaves the store path, for %s" % (dest, "/" + "/".join(here)),
                repr(target),
                "write an absolute target (e.g. \"%s\") or a relative one that stays inside" % meant,
            )

def validate_config(ctx, config_json):
    """Decode `config` (a JSON string) and check Env, Cmd and Entrypoint types."""
    if not config_json:
        return {}
    config = json.decode(config_json)
    if type(config) != "dict":
        label_fail(ctx, "config", "must be a JSON object", config_json, "pass a dict")
    for key in config.keys():
        if key not in _CONFIG_KEYS:
            label_fail(ctx, "config", "unknown config key '%s'" % key, key, "use one of " + ", ".join(_CONFIG_KEYS))
    for e in config.get("Env", []):
        if type(e) != "string" or "=" not in e or e.startswith("="):
            label_fail(ctx, "config", "Env entries must be \"NAME=value\" strings", repr(e), "write e.g. \"PATH=/bin\"")
    for key in ("Cmd", "Entrypoint"):
        v = config.get(key)
        if v != None and (type(v) != "list" or [x for x in v if type(x) != "string"]):
            label_fail(ctx, "config", "%s must be a list of strings" % key, repr(v), "write e.g. [\"/bin/sh\", \"-c\", \"...\"]")
    return config

_CONFIG_KEYS = [
    "Cmd",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "Healthcheck",
    "Labels",
    "OnBuild",
    "Shell",
    "StopSignal",
    "User",
    "Volumes",
    "WorkingDir",
]

def find_python(rctx, where):
    """A repository rule's interpreter for the strata tool: attr `python`, then python3.11, python3."""
    candidates = [rctx.attr.python] if rctx.attr.python else ["python3.11", "python3"]
    for name in candidates:
        path = rctx.which(name) if "/" not in name else rctx.path(name)
        if path == None or not path.exists:
            continue
        res = rctx.execute([path, "-c", "import sys; print(sys.version_info >= (3, 11))"])
        if res.return_code == 0 and res.stdout.strip() == "True":
            return path
    fail("%s: attribute 'python': no Python 3.11 or newer found (got candidates %s); install python3 (>= 3.11) or set python = \"/path/to/python3\"" % (where, candidates))
