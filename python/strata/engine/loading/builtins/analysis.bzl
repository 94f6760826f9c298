"""The analysis driver: runs each rule implementation, dependencies first.

The engine's generated driver (analysis/analysis.py) loads `analyze__` and
calls it once per batch of targets; each finished target is reported back
with its files, executable, runfiles and output groups.
"""

load(":bridge.bzl", "strata")
load(":ctx.bzl", "dep__", "make_ctx__", "runfiles__")
load(":depset.bzl", "depset")
load(":providers.bzl", "DefaultInfo", "OutputGroupInfo", "target__")
load(":values.bzl", "file__")


def _default_info_from(d, runs=None):
    """DefaultInfo from the engine's file records; `runs`: a file target's own file, which
    is its files_to_run.executable in Bazel (without making the target executable)."""
    exe = file__(d["executable"]) if d["executable"] != None else None
    return DefaultInfo(
        files=depset([file__(f) for f in d["files"]]),
        runfiles=runfiles__(files=[file__(f) for f in d["runfiles"]]),
        executable=exe,
        _strata_runs__=file__(runs) if runs != None else None,
    )


def _report(label, t):
    info = t[DefaultInfo]
    groups = {}
    og = t.get(OutputGroupInfo)
    if og != None:
        groups = {k: [f.path for f in v.to_list()] for k, v in og._groups.items()}
    runfiles = info.default_runfiles.files.to_list() if info.default_runfiles != None else []
    strata.report(
        label,
        {
            "files": [f.path for f in info.files.to_list()],
            "executable": info.executable.path if info.executable != None else None,
            "runfiles": [f.path for f in runfiles],
            "output_groups": groups,
        },
    )


def _run_rule(rule, t, results):
    ctx = make_ctx__(rule, t, results)
    ret = rule.impl(ctx)
    if ret == None:
        ret = []
    if type(ret) == "struct" and hasattr(ret, "_strata_provider__"):
        ret = [ret]  # Bazel also takes one provider instance
    if type(ret) != "list":
        fail(
            "%s: rule implementation must return a provider or a list of providers (got %s); return [DefaultInfo(...), ...]"
            % (t["label"], type(ret))
        )
    for p in ret:
        if type(p) != "struct" or not hasattr(p, "_strata_provider__"):
            fail(
                "%s: rule implementation returned a non-provider (got %s); return provider instances"
                % (t["label"], type(p))
            )
    target = target__(t["label"], ret, t["key"])
    for p in rule.provides:
        if p not in target:
            fail(
                "%s: rule declares provides=%s but its implementation did not return one of them; return it from the implementation"
                % (t["label"], rule.provides)
            )
    predeclared = [file__(f) for f in t["predeclared"]]
    exe = file__(t["executable"]) if t["executable"] != None else None
    info = target.get(DefaultInfo)
    if info == None:
        info = DefaultInfo(executable=exe)
    if info.executable == None and exe != None:
        info = DefaultInfo(
            files=info.files,
            default_runfiles=info.default_runfiles,
            data_runfiles=info.data_runfiles,
            executable=exe,
        )
    files = info.files if info.files != None else depset(predeclared)
    if info.executable != None and info.executable not in files.to_list():
        files = depset([info.executable], transitive=[files])
    runfiles = info.default_runfiles if info.default_runfiles != None else runfiles__()
    target[DefaultInfo] = DefaultInfo(
        files=files,
        default_runfiles=runfiles,
        data_runfiles=info.data_runfiles,
        executable=info.executable,
    )
    return target


def analyze__(registries, results, batch):
    """Analyses the engine's `batch`-th slice of the targets, dependencies first.

    The engine calls this once per top-level statement: Starlark frees garbage
    only between statements, so one call for the whole graph would keep every
    temporary value of every rule implementation until the end.
    """
    for t in strata.batch(batch):
        label = t["label"]
        key = t["key"]  # the label, configured: "//pkg:name (host)" in the host configuration
        kind = t["kind"]
        if kind == "alias":
            results[key] = dep__(results, t, t["actual"])
        elif kind == "rule":
            rule = registries[t["registry"]]["rules"][t["rule"]]
            results[key] = _run_rule(rule, t, results)
        else:
            info = strata.native(key)
            results[key] = target__(label, [_default_info_from(info)], key)
        _report(key, results[key])
