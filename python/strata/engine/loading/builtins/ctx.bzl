"""ctx: what a rule implementation sees of its target, and runfiles.

`make_ctx__` builds it from the engine's entry for the target (attribute
values, outputs, the file table of the files it uses); `dep__` is the Target of
one dependency.
"""

load(":actions.bzl", "make_actions__")
load(":bridge.bzl", "strata")
load(":depset.bzl", "depset", "to_list__")
load(":providers.bzl", "DefaultInfo", "target__")
load(":values.bzl", "file__", "label__")


def runfiles__(
    files=[],
    transitive_files=None,
    symlinks={},
    root_symlinks={},
    collect_data=False,
    collect_default=False,
):
    return _make_runfiles(
        depset(to_list__(files), transitive=[transitive_files] if transitive_files != None else [])
    )


def _make_runfiles(files):
    holder = []

    def merge(other):
        return _make_runfiles(depset(transitive=[holder[0].files, other.files]))

    def merge_all(others):
        return _make_runfiles(depset(transitive=[holder[0].files] + [o.files for o in others]))

    me = struct(
        _strata_type__="runfiles",
        files=files,
        symlinks={},
        root_symlinks={},
        empty_filenames=depset(),
        merge=merge,
        merge_all=merge_all,
    )
    holder.append(me)
    return me


def _target_files(t):
    return t[DefaultInfo].files.to_list()


def _file_rows(t):
    """{key: (label, File)} of the file targets entry `t` uses, made from its file table
    (FileRecords.file_table: eleven lines a file, or the same fields as a JSON list) on
    first use and kept in the entry."""
    rows = t.get("file_rows__")
    if rows != None:
        return rows
    table = t["files"]
    flat = json.decode(table) if table.startswith("[") else (table.split("\n") if table else [])
    rows = {}
    for i in range(0, len(flat), 11):
        repo = flat[i + 10]
        owner = struct(
            _strata_label__=flat[i + 7],
            name=flat[i + 8],
            package=flat[i + 9],
            workspace_name=repo,
            workspace_root="external/" + repo if repo else "",
        )
        path = flat[i + 2]
        base = path.rpartition("/")[2]
        rows[flat[i]] = (flat[i + 1], struct(
            _strata_file__=True,
            path=path,
            short_path=flat[i + 3],
            basename=base,
            dirname=path.rpartition("/")[0],
            extension=base.rpartition(".")[2] if "." in base else "",
            is_source=flat[i + 4] == "1",
            is_directory=flat[i + 5] == "1",
            root=struct(path=flat[i + 6]),
            owner=owner,
        ))
    t["file_rows__"] = rows
    return rows


def dep__(results, t, key):
    """The Target of dependency `key`: analysed already, or a file of entry `t`.

    A file's Target is made when a rule asks for it and is garbage after that
    rule: a closure's tens of thousands of files would otherwise all stay alive
    until the end of analysis. Targets compare by value, so a file made twice
    is still one element of a depset.
    """
    found = results.get(key)
    if found != None:
        return found
    label, f = _file_rows(t)[key]
    # as in Bazel, the file is its own files_to_run.executable
    info = DefaultInfo(files=depset([f]), runfiles=runfiles__(files=[f]), _strata_runs__=f)
    return target__(label, [info], key)


def _convert_attr(t, name, kind, value, results):
    if kind == "label":
        return dep__(results, t, value) if value != None else None
    if kind == "label_list":
        return [dep__(results, t, v) for v in value]
    if kind == "label_keyed_string_dict":
        pairs = [(dep__(results, t, k), v) for k, v in value]
        return struct(
            items=lambda: pairs,
            keys=lambda: [p[0] for p in pairs],
            values=lambda: [p[1] for p in pairs],
        )
    if kind == "output":
        return label__(value["label"]) if value != None else None
    if kind == "output_list":
        return [label__(v["label"]) for v in value]
    return value


def make_ctx__(rule, t, results):
    owner = t["key"]
    attr_values = {}
    files = {}
    file = {}
    executable = {}
    for name, a in t["attrs"].items():
        kind = a["type"]
        v = _convert_attr(t, name, kind, a["value"], results)
        attr_values[name] = v
        if kind in ("label", "label_list"):
            deps = [v] if kind == "label" else v
            deps = [d for d in deps if d != None]
            for req in rule.attr_providers.get(name, []):
                reqs = req if type(req) == "list" else [req]
                for d in deps:
                    for p in reqs:
                        if p not in d:
                            fail(
                                "%s: attribute '%s' needs targets with a provider the dependency does not return (got %s); depend on a target of a rule that returns it"
                                % (owner, name, d["__label__"])
                            )
            fl = []
            for d in deps:
                fl.extend(_target_files(d))
            files[name] = fl
            if a.get("allow_single_file"):
                file[name] = fl[0] if fl else None
            if a.get("executable"):
                executable[name] = (
                    deps[0][DefaultInfo].files_to_run.executable if deps else None
                )
        elif kind in ("output", "output_list"):
            outs = [
                file__(o["file"])
                for o in ([a["value"]] if kind == "output" else a["value"])
                if o != None
            ]
            files[name] = outs
            if kind == "output":
                file[name] = outs[0] if outs else None
    outputs = {k: file__(f) for k, f in t["outputs"].items()}
    for name, a in t["attrs"].items():
        if a["type"] == "output":
            outputs[name] = file__(a["value"]["file"]) if a["value"] != None else None
        elif a["type"] == "output_list":
            outputs[name] = [file__(v["file"]) for v in a["value"]]
    label = label__(t["label_info"])

    def expand_location(input, targets=[]):
        return strata.expand_location(owner, input, [x["__key__"] for x in targets])

    def runfiles(files=[], transitive_files=None, symlinks={}, root_symlinks={},
                 collect_data=False, collect_default=False):
        # Bazel collects from the srcs, deps and data attributes: a file target
        # brings itself, a rule its data (or default) runfiles.
        collected = []
        if collect_data or collect_default:
            for name in ("srcs", "deps", "data"):
                for d in _deps_of(attr_values.get(name)):
                    info = d[DefaultInfo]
                    rf = info.data_runfiles if collect_data and info.data_runfiles != None else None
                    if rf == None:
                        rf = info.default_runfiles
                    if rf != None:
                        collected.append(rf.files)
        # Bazel's order: collected runfiles, then files, then transitive_files.
        parts = collected + [depset(to_list__(files))]
        if transitive_files != None:
            parts.append(transitive_files)
        return _make_runfiles(depset(transitive=parts))

    def resolve_tools(tools=[]):
        """(inputs, input manifests) to run `tools`: each one's executable, else its
        files; an executable's runfiles tree is added by the engine (add_action)."""
        inputs = []
        for t in tools:
            info = t[DefaultInfo]
            exe = info.files_to_run.executable
            inputs.extend([exe] if exe != None else info.files.to_list())
        return depset(inputs), []

    extra = {}
    if "build_setting_value" in t:
        extra["build_setting_value"] = t["build_setting_value"]
    return struct(
        _strata_object__=True,
        _strata_type__="ctx",
        label=label,
        attr=struct(**attr_values),
        files=struct(**files),
        file=struct(**file),
        executable=struct(**executable),
        outputs=struct(**outputs),
        bin_dir=struct(path=t["bin_dir"]),
        genfiles_dir=struct(path=t["bin_dir"]),
        workspace_name=t["workspace_name"],
        build_file_path=t["build_file_path"],
        var=t["var"],
        features=[],
        disabled_features=[],
        actions=make_actions__(owner),
        runfiles=runfiles,
        resolve_tools=resolve_tools,
        expand_location=expand_location,
        configuration=struct(
            _strata_object__=True,
            _strata_type__="configuration",
            bin_dir=struct(path=t["bin_dir"]),
            genfiles_dir=struct(path=t["bin_dir"]),
            coverage_enabled=False,
            default_shell_env={},
            host_path_separator=":",
            test_env={},
        ),
        **extra
    )


def _deps_of(value):
    """The targets in an attribute value (a target, a list of them, or neither)."""
    if type(value) == "dict" and "__key__" in value:
        return [value]
    if type(value) == "list":
        return [v for v in value if type(v) == "dict" and "__key__" in v]
    return []
