"""Bazel's Starlark API, written in Starlark for the embedded engine.

Why Starlark and not Python: starlark-pyo3 cannot hand a Starlark function to
Python, so everything that holds user functions (rule implementations,
provider constructors, depsets with `to_list`, Args with `map_each`) lives
here. Python is reached only through the `_strata_*` callables the engine adds
to this module before evaluating it, always with plain data (strings, lists,
dicts; structs arrive in Python as dicts).

Every .bzl, BUILD and WORKSPACE module first runs a short per-module prelude
(see `loader.py`) that loads the public names below and defines its own
`rule`, `repository_rule` and `Label`, because those need to know which file
they were called from.
"""

# ---- providers -------------------------------------------------------------


def provider(doc="", fields=None, init=None):
    """A provider constructor; its instances carry it under `_strata_provider__`."""
    holder = []
    names = None
    if fields != None:
        names = list(fields.keys()) if type(fields) == "dict" else list(fields)

    def ctor(**kwargs):
        if names != None:
            for k in kwargs:
                if k not in names:
                    fail(
                        "provider got an unexpected field '%s' (got fields %s); declare it in fields"
                        % (k, sorted(kwargs.keys()))
                    )
        return struct(_strata_provider__=holder[0], **kwargs)

    holder.append(ctor)
    return ctor


def _default_info(
    files=None,
    runfiles=None,
    data_runfiles=None,
    default_runfiles=None,
    executable=None,
    _strata_runs__=None,
):
    if files != None and not _is_depset(files):
        fail("DefaultInfo: 'files' must be a depset (got %s); wrap it: depset([...])" % type(files))
    return struct(
        _strata_provider__=_DEFAULT_INFO[0],
        files=files,
        default_runfiles=default_runfiles if default_runfiles != None else runfiles,
        data_runfiles=data_runfiles,
        files_to_run=struct(
            executable=_strata_runs__ if _strata_runs__ != None else executable,
            runfiles_manifest=None,
        ),
        executable=executable,
    )


_DEFAULT_INFO = [_default_info]
DefaultInfo = _default_info


def _output_group_info(**kwargs):
    groups = {}
    for k, v in kwargs.items():
        groups[k] = v if _is_depset(v) else depset(v)
    return struct(_strata_provider__=_OUTPUT_GROUP_INFO[0], _groups=groups, **groups)


_OUTPUT_GROUP_INFO = [_output_group_info]
OutputGroupInfo = _output_group_info

# ---- depset ----------------------------------------------------------------


def _is_depset(x):
    return type(x) == "struct" and hasattr(x, "_strata_depset__")


def depset(direct=None, order="default", transitive=None, items=None):
    if items != None and direct == None:
        direct = items
    if order not in ("default", "postorder", "preorder", "topological"):
        fail(
            "depset: unknown order (got %r); use default, postorder, preorder or topological"
            % order
        )
    d = tuple(direct.to_list() if _is_depset(direct) else (direct or []))
    t = tuple([x for x in (transitive or []) if x._direct or x._transitive])
    for x in transitive or []:
        if not _is_depset(x):
            fail("depset: 'transitive' must be a list of depsets (got %s)" % type(x))
    node_id = _strata_next_id()
    holder = []

    def to_list():
        return _flatten(holder[0])

    me = struct(
        _strata_depset__=node_id,
        _direct=d,
        _transitive=t,
        _order=order,
        to_list=to_list,
    )
    holder.append(me)
    return me


def _flatten(root):
    """Iterative walk (no recursion), duplicates dropped, Bazel's orders."""
    seen = {}
    seen_nodes = {}
    out = []
    preorder = root._order == "preorder"
    topo = root._order == "topological"
    stack = [(root, False)]
    post = []
    for _ in range(1 << 30):
        if not stack:
            break
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
            continue
        if node._strata_depset__ in seen_nodes:
            continue
        seen_nodes[node._strata_depset__] = True
        if preorder:
            post.append(node)
            for child in reversed(node._transitive):
                stack.append((child, False))
        else:
            stack.append((node, True))
            children = node._transitive
            if topo:
                children = list(children)
            else:
                children = reversed(children)
            for child in children:
                stack.append((child, False))
    nodes = reversed(post) if topo else post
    for node in nodes:
        for e in node._direct:
            if e not in seen:
                seen[e] = True
                out.append(e)
    return out


def _to_list(x):
    """A list from a depset, list, tuple or None."""
    if x == None:
        return []
    if _is_depset(x):
        return x.to_list()
    return list(x)


# ---- labels and files ------------------------------------------------------


def _label(d):
    return struct(
        _strata_label__=d["canonical"],
        name=d["name"],
        package=d["package"],
        workspace_name=d["workspace_name"],
        workspace_root=d["workspace_root"],
    )


def label_string__(x):
    """`str(label)` as Bazel prints it; struct labels would print as structs."""
    if type(x) == "struct" and hasattr(x, "_strata_label__"):
        return x._strata_label__
    return str(x)


def _file(d):
    return struct(
        _strata_file__=True,
        path=d["path"],
        short_path=d["short_path"],
        basename=d["basename"],
        dirname=d["dirname"],
        extension=d["extension"],
        is_source=d["is_source"],
        is_directory=d["is_directory"],
        root=struct(path=d["root"]),
        owner=_label(d["owner"]),
    )


def _is_file(x):
    return type(x) == "struct" and hasattr(x, "_strata_file__")


def _plain(x):
    """Plain data for Python: depsets flattened, files and labels as strings."""
    if _is_depset(x):
        return [_plain(e) for e in x.to_list()]
    if _is_file(x):
        return x.path
    if type(x) == "struct" and hasattr(x, "_strata_label__"):
        return x._strata_label__
    if type(x) in ("list", "tuple"):
        return [_plain(e) for e in x]
    return x


# ---- dir() -------------------------------------------------------------------


def dir__(x):
    """`dir(x)` as Bazel answers it: a struct (or provider instance) also lists its
    `to_json` and `to_proto` methods; strata's own marker fields are hidden.

    Only the listing: starlark-pyo3's struct has no methods, so `s.to_json()`
    itself is missing (use `json.encode(s)`).
    """
    names = [n for n in dir(x) if not n.startswith("_strata")]
    if type(x) != "struct":
        return names
    if _is_internal(x):
        return [n for n in names if not n.startswith("_")]
    return sorted(names + ["to_json", "to_proto"])


def _is_internal(x):
    """Engine values that are structs here but not under Bazel (File, Label, ctx, ...)."""
    for marker in ("_strata_file__", "_strata_label__", "_strata_depset__", "_strata_args__",
                   "_strata_path__", "_strata_object__"):
        if hasattr(x, marker):
            return True
    return False


# ---- select / Label / native -----------------------------------------------


def select(conditions, no_match_error=""):
    return _strata_select(conditions, no_match_error)


def make_label__(module, text):
    if type(text) == "struct" and hasattr(text, "_strata_label__"):
        return text
    return _label(_strata_label(module, text))


# ---- attributes --------------------------------------------------------------


def _attr(kind, default, doc, mandatory, extra):
    spec = {"type": kind, "default": default, "mandatory": mandatory, "doc": doc}
    spec.update(extra)
    return struct(**spec)


def _label_extra(
    allow_files, allow_single_file, executable, cfg, providers, allow_empty=True, aspects=None
):
    return {
        "allow_files": allow_files if type(allow_files) != "list" else allow_files,
        "allow_single_file": allow_single_file,
        "executable": executable,
        "cfg": cfg if type(cfg) == "string" or cfg == None else "custom",
        "providers": providers or [],
        "allow_empty": allow_empty,
    }


def _a_string(default="", doc="", mandatory=False, values=[]):
    return _attr("string", default, doc, mandatory, {"values": values})


def _a_string_list(default=[], doc="", mandatory=False, allow_empty=True):
    return _attr("string_list", default, doc, mandatory, {"allow_empty": allow_empty})


def _a_string_dict(default={}, doc="", mandatory=False, allow_empty=True):
    return _attr("string_dict", default, doc, mandatory, {"allow_empty": allow_empty})


def _a_string_list_dict(default={}, doc="", mandatory=False, allow_empty=True):
    return _attr("string_list_dict", default, doc, mandatory, {})


def _a_int(default=0, doc="", mandatory=False, values=[]):
    return _attr("int", default, doc, mandatory, {"values": values})


def _a_int_list(default=[], doc="", mandatory=False, allow_empty=True):
    return _attr("int_list", default, doc, mandatory, {})


def _a_bool(default=False, doc="", mandatory=False):
    return _attr("bool", default, doc, mandatory, {})


def _a_label(
    default=None,
    doc="",
    mandatory=False,
    allow_files=None,
    allow_single_file=None,
    executable=False,
    cfg=None,
    providers=[],
    aspects=[],
    allow_rules=None,
    flags=[],
):
    return _attr(
        "label",
        default,
        doc,
        mandatory,
        _label_extra(allow_files, allow_single_file, executable, cfg, providers),
    )


def _a_label_list(
    default=[],
    doc="",
    mandatory=False,
    allow_files=None,
    allow_empty=True,
    cfg=None,
    providers=[],
    aspects=[],
    allow_rules=None,
    flags=[],
):
    return _attr(
        "label_list",
        default,
        doc,
        mandatory,
        _label_extra(allow_files, None, False, cfg, providers, allow_empty),
    )


def _a_label_keyed_string_dict(
    default={},
    doc="",
    mandatory=False,
    allow_files=None,
    allow_empty=True,
    cfg=None,
    providers=[],
    aspects=[],
    allow_rules=None,
):
    return _attr(
        "label_keyed_string_dict",
        default,
        doc,
        mandatory,
        _label_extra(allow_files, None, False, cfg, providers, allow_empty),
    )


def _a_output(doc="", mandatory=False):
    return _attr("output", None, doc, mandatory, {})


def _a_output_list(doc="", mandatory=False, allow_empty=True):
    return _attr("output_list", [], doc, mandatory, {"allow_empty": allow_empty})


attr = struct(
    string=_a_string,
    string_list=_a_string_list,
    string_dict=_a_string_dict,
    string_list_dict=_a_string_list_dict,
    int=_a_int,
    int_list=_a_int_list,
    bool=_a_bool,
    label=_a_label,
    label_list=_a_label_list,
    label_keyed_string_dict=_a_label_keyed_string_dict,
    output=_a_output,
    output_list=_a_output_list,
)


# ---- build settings (config.*) ---------------------------------------------


def _build_setting(kind):
    def make(flag=False, allow_multiple=False):
        return struct(_strata_build_setting__=kind, flag=flag, allow_multiple=allow_multiple)

    return make


config = struct(
    int=_build_setting("int"),
    bool=_build_setting("bool"),
    string=_build_setting("string"),
    string_list=_build_setting("string_list"),
)


def _attr_schema(attrs):
    """Attribute specs as plain dicts for Python; provider lists stay here."""
    schema = {}
    providers = {}
    for name, spec in (attrs or {}).items():
        if type(spec) != "struct" or not hasattr(spec, "type"):
            fail(
                "attribute '%s' must be created with attr.* (got %s); e.g. attr.string()"
                % (name, type(spec))
            )
        d = {k: getattr(spec, k) for k in dir(spec) if k != "providers"}
        if d.get("default") != None and d["type"] in (
            "label",
            "label_list",
            "label_keyed_string_dict",
        ):
            d["default"] = (
                _plain(d["default"])
                if d["type"] != "label_keyed_string_dict"
                else {label_string__(k): v for k, v in d["default"].items()}
            )
        schema[name] = d
        if getattr(spec, "providers", None):
            providers[name] = spec.providers
    return schema, providers


# ---- rule() and repository_rule() -------------------------------------------


def make_rule__(registry, implementation, attrs, kwargs):
    schema, attr_providers = _attr_schema(attrs)
    setting = kwargs.get("build_setting")
    if setting != None:
        if type(setting) != "struct" or not hasattr(setting, "_strata_build_setting__"):
            fail(
                "rule: 'build_setting' must be made by config.* (got %s); e.g. config.string(flag = True)"
                % type(setting)
            )
        kind = setting._strata_build_setting__
        schema["build_setting_default"] = {"type": kind, "default": None, "mandatory": True, "doc": ""}
        setting = {"type": kind, "flag": setting.flag}
    index = len(registry["rules"])
    registry["rules"].append(
        struct(
            impl=implementation,
            attr_providers=attr_providers,
            provides=kwargs.get("provides", []),
        )
    )
    outputs = kwargs.get("outputs") or {}
    if type(outputs) != "dict":
        fail(
            'rule: \'outputs\' must be a dict of name to template (got %s); e.g. {"out": "%%{name}.txt"}'
            % type(outputs)
        )
    _strata_rule_schema(
        registry["module"],
        index,
        schema,
        {
            "executable": kwargs.get("executable", False),
            "test": kwargs.get("test", False),
            "outputs": outputs,
            "doc": kwargs.get("doc", ""),
            "build_setting": setting,
        },
    )
    module = registry["module"]

    def instantiate(name = None, **attrs):
        # call_stack(): the target's place is the BUILD line that made it (for errors)
        _strata_add_target(module, index, name, attrs, call_stack())

    return instantiate


def make_repository_rule__(registry, implementation, attrs, kwargs):
    schema, _ = _attr_schema(attrs)
    index = len(registry["repo_rules"])
    registry["repo_rules"].append(implementation)
    module = registry["module"]

    environ = kwargs.get("environ", [])
    _strata_repository_rule_schema(module, index, schema, {"doc": kwargs.get("doc", "")})

    def instantiate(name = None, **attrs):
        _strata_add_repository(module, index, name, schema, attrs, environ)

    return instantiate


# ---- ctx -------------------------------------------------------------------


def _runfiles(
    files=[],
    transitive_files=None,
    symlinks={},
    root_symlinks={},
    collect_data=False,
    collect_default=False,
):
    return _make_runfiles(
        depset(_to_list(files), transitive=[transitive_files] if transitive_files != None else [])
    )


def _make_runfiles(files):
    holder = []

    def merge(other):
        return _make_runfiles(depset(transitive=[holder[0].files, other.files]))

    def merge_all(others):
        return _make_runfiles(depset(transitive=[holder[0].files] + [o.files for o in others]))

    me = struct(
        files=files,
        symlinks={},
        root_symlinks={},
        empty_filenames=depset(),
        merge=merge,
        merge_all=merge_all,
    )
    holder.append(me)
    return me


def _args_expand(args):
    """Expand an Args object into strings, as Bazel does when the action runs."""
    out = []
    for item in args._parts:
        kind = item["kind"]
        if kind == "single":
            out.extend(item["prefix"])
            out.append(_fmt(item["value"], item["format"]))
            continue
        values = _to_list(item["values"])
        if item["map_each"] != None:
            mapped = []
            for v in values:
                r = item["map_each"](v)
                if r == None:
                    continue
                mapped.extend(r if type(r) == "list" else [r])
            values = mapped
        strs = [_fmt(v, item["format_each"]) for v in values]
        if item["uniquify"]:
            seen = {}
            uniq = []
            for s in strs:
                if s not in seen:
                    seen[s] = True
                    uniq.append(s)
            strs = uniq
        if not strs and item["omit_if_empty"]:
            continue
        out.extend(item["prefix"])
        if kind == "joined":
            out.append(_fmt(item["join_with"].join(strs), item["format_joined"]))
        else:
            for s in strs:
                if item["before_each"] != None:
                    out.append(item["before_each"])
                out.append(s)
            if item["terminate_with"] != None:
                out.append(item["terminate_with"])
    return out


def _str_of(v):
    if _is_file(v):
        return v.path
    return label_string__(v)


def _fmt(v, fmt):
    s = _str_of(v)
    return fmt % s if fmt != None else s


def _args():
    parts = []
    state = {"param_file": None, "format": "shell"}

    def add(arg_name_or_value, value=None, format=None):
        if value == None:
            parts.append(
                {"kind": "single", "prefix": [], "value": arg_name_or_value, "format": format}
            )
        else:
            parts.append(
                {"kind": "single", "prefix": [arg_name_or_value], "value": value, "format": format}
            )
        return me[0]

    def _many(kind, a, b, kw):
        prefix = [] if b == None else [a]
        values = a if b == None else b
        parts.append(
            {
                "kind": kind,
                "prefix": prefix,
                "values": values,
                "map_each": kw.get("map_each"),
                "format_each": kw.get("format_each"),
                "before_each": kw.get("before_each"),
                "omit_if_empty": kw.get("omit_if_empty", True),
                "uniquify": kw.get("uniquify", False),
                "terminate_with": kw.get("terminate_with"),
                "join_with": kw.get("join_with", ""),
                "format_joined": kw.get("format_joined"),
            }
        )
        return me[0]

    def add_all(arg_name_or_values, values=None, **kw):
        return _many("all", arg_name_or_values, values, kw)

    def add_joined(arg_name_or_values, values=None, **kw):
        return _many("joined", arg_name_or_values, values, kw)

    def use_param_file(param_file_arg, use_always=False):
        state["param_file"] = (param_file_arg, use_always)
        return me[0]

    def set_param_file_format(format):
        state["format"] = format
        return me[0]

    me = [
        struct(
            _strata_args__=True,
            _parts=parts,
            _state=state,
            add=add,
            add_all=add_all,
            add_joined=add_joined,
            use_param_file=use_param_file,
            set_param_file_format=set_param_file_format,
        )
    ]
    return me[0]


def _arguments(owner, arguments):
    """argv tail from a list of strings and Args; param files become write actions."""
    out = []
    for a in arguments or []:
        if type(a) == "struct" and hasattr(a, "_strata_args__"):
            expanded = _args_expand(a)
            pf = a._state["param_file"]
            if pf != None and pf[1]:
                path = _strata_param_file(owner, expanded, a._state["format"])
                out.append(pf[0] % path)
            else:
                out.extend(expanded)
        else:
            out.append(_str_of(a))
    return out


def _tool_parts(x):
    """(executable path or None, input paths) of a File, FilesToRunProvider or path."""
    if x == None:
        return None, []
    if type(x) == "string":
        return x, []
    if _is_file(x):
        return x.path, [x.path]
    if type(x) == "struct" and hasattr(x, "executable"):
        if x.executable == None:
            fail("tool has no executable (got %s); use a target with an executable" % x)
        return x.executable.path, [x.executable.path]
    fail("executable must be a File, FilesToRunProvider or string (got %s)" % type(x))


def _split_tools(tools):
    """(plain file inputs, executables) of an action's `tools`: executables bring runfiles."""
    files = []
    exes = []
    for t in _to_list(tools):
        if _is_file(t):
            files.append(t.path)
        else:
            _, extra = _tool_parts(t)
            exes.extend(extra)
    return files, exes


def _make_actions(owner):
    def declare_file(filename, sibling=None):
        return _file(
            _strata_declare(owner, filename, sibling.path if sibling != None else None, False)
        )

    def declare_directory(filename, sibling=None):
        return _file(
            _strata_declare(owner, filename, sibling.path if sibling != None else None, True)
        )

    def write(output, content, is_executable=False):
        if type(content) == "struct" and hasattr(content, "_strata_args__"):
            content = "\n".join(_args_expand(content)) + "\n"
        _strata_action(
            owner,
            {
                "kind": "write",
                "outputs": [output.path],
                "content": content,
                "is_executable": is_executable,
                "mnemonic": "FileWrite",
            },
        )

    def run_action(
        argv,
        inputs,
        tools,
        outputs,
        mnemonic,
        progress_message,
        use_default_shell_env,
        env,
        execution_requirements,
    ):
        """The one request of `run` and `run_shell`: they differ only in how argv is made."""
        _strata_action(
            owner,
            {
                "kind": "run",
                "argv": argv,
                "inputs": inputs,
                "tools": tools,
                "outputs": _plain(outputs),
                "mnemonic": mnemonic or "Action",
                "progress_message": progress_message or "",
                "use_default_shell_env": use_default_shell_env,
                "env": env or {},
                "execution_requirements": execution_requirements or {},
            },
        )

    def run(
        outputs,
        inputs=[],
        executable=None,
        tools=None,
        arguments=[],
        mnemonic=None,
        progress_message=None,
        use_default_shell_env=False,
        env=None,
        execution_requirements=None,
        input_manifests=None,
        unused_inputs_list=None,
        exec_group=None,
        shadowed_action=None,
        resource_set=None,
        toolchain=None,
    ):
        exe, exe_inputs = _tool_parts(executable)
        tool_inputs, tool_exes = _split_tools(tools)
        run_action(
            [exe] + _arguments(owner, arguments),
            _plain(_to_list(inputs)) + tool_inputs,
            exe_inputs + tool_exes,
            outputs,
            mnemonic,
            progress_message,
            use_default_shell_env,
            env,
            execution_requirements,
        )

    def run_shell(
        outputs,
        command,
        inputs=[],
        tools=None,
        arguments=[],
        mnemonic=None,
        progress_message=None,
        use_default_shell_env=False,
        env=None,
        execution_requirements=None,
        input_manifests=None,
        exec_group=None,
        shadowed_action=None,
        resource_set=None,
        toolchain=None,
    ):
        if type(command) == "list":
            argv = [_str_of(c) for c in command]
        else:
            argv = ["/bin/bash", "-c", command]
            if arguments:
                argv.append("")
        tool_inputs, tool_exes = _split_tools(tools)
        run_action(
            argv + _arguments(owner, arguments),
            _plain(_to_list(inputs)) + tool_inputs,
            tool_exes,
            outputs,
            mnemonic,
            progress_message,
            use_default_shell_env,
            env,
            execution_requirements,
        )

    def expand_template(template, output, substitutions={}, is_executable=False):
        _strata_action(
            owner,
            {
                "kind": "template",
                "template": template.path,
                "outputs": [output.path],
                "substitutions": substitutions,
                "is_executable": is_executable,
                "mnemonic": "TemplateExpand",
            },
        )

    def symlink(
        output, target_file=None, target_path=None, is_executable=False, progress_message=None
    ):
        if target_file == None:
            fail(
                "ctx.actions.symlink: target_file is required (got None); target_path is not supported"
            )
        _strata_action(
            owner,
            {
                "kind": "symlink",
                "outputs": [output.path],
                "target": target_file.path,
                "is_executable": is_executable,
                "mnemonic": "Symlink",
                "progress_message": progress_message or "",
            },
        )

    def do_nothing(mnemonic, inputs=[]):
        pass

    return struct(
        _strata_object__=True,
        declare_file=declare_file,
        declare_directory=declare_directory,
        write=write,
        run=run,
        run_shell=run_shell,
        expand_template=expand_template,
        symlink=symlink,
        args=_args,
        do_nothing=do_nothing,
    )


def _target_files(t):
    return t[_DEFAULT_INFO[0]].files.to_list()


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


def _dep(results, t, key):
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
    info = _default_info(files=depset([f]), runfiles=_runfiles(files=[f]), _strata_runs__=f)
    return _target(label, [info], key)


def _convert_attr(t, name, kind, value, results):
    if kind == "label":
        return _dep(results, t, value) if value != None else None
    if kind == "label_list":
        return [_dep(results, t, v) for v in value]
    if kind == "label_keyed_string_dict":
        pairs = [(_dep(results, t, k), v) for k, v in value]
        return struct(
            items=lambda: pairs,
            keys=lambda: [p[0] for p in pairs],
            values=lambda: [p[1] for p in pairs],
        )
    if kind == "output":
        return _label(value["label"]) if value != None else None
    if kind == "output_list":
        return [_label(v["label"]) for v in value]
    return value


def _make_ctx(rule, t, results):
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
                    deps[0][_DEFAULT_INFO[0]].files_to_run.executable if deps else None
                )
        elif kind in ("output", "output_list"):
            outs = [
                _file(o["file"])
                for o in ([a["value"]] if kind == "output" else a["value"])
                if o != None
            ]
            files[name] = outs
            if kind == "output":
                file[name] = outs[0] if outs else None
    outputs = {k: _file(f) for k, f in t["outputs"].items()}
    for name, a in t["attrs"].items():
        if a["type"] == "output":
            outputs[name] = _file(a["value"]["file"]) if a["value"] != None else None
        elif a["type"] == "output_list":
            outputs[name] = [_file(v["file"]) for v in a["value"]]
    label = _label(t["label_info"])

    def expand_location(input, targets=[]):
        return _strata_expand_location(owner, input, [x["__key__"] for x in targets])

    def runfiles(files=[], transitive_files=None, symlinks={}, root_symlinks={},
                 collect_data=False, collect_default=False):
        # Bazel collects from the srcs, deps and data attributes: a file target
        # brings itself, a rule its data (or default) runfiles.
        collected = []
        if collect_data or collect_default:
            for name in ("srcs", "deps", "data"):
                for d in _deps_of(attr_values.get(name)):
                    info = d[_DEFAULT_INFO[0]]
                    rf = info.data_runfiles if collect_data and info.data_runfiles != None else None
                    if rf == None:
                        rf = info.default_runfiles
                    if rf != None:
                        collected.append(rf.files)
        # Bazel's order: collected runfiles, then files, then transitive_files.
        parts = collected + [depset(_to_list(files))]
        if transitive_files != None:
            parts.append(transitive_files)
        return _make_runfiles(depset(transitive=parts))

    def resolve_tools(tools=[]):
        """(inputs, input manifests) to run `tools`: each one's executable, else its
        files; an executable's runfiles tree is added by the engine (add_action)."""
        inputs = []
        for t in tools:
            info = t[_DEFAULT_INFO[0]]
            exe = info.files_to_run.executable
            inputs.extend([exe] if exe != None else info.files.to_list())
        return depset(inputs), []

    extra = {}
    if "build_setting_value" in t:
        extra["build_setting_value"] = t["build_setting_value"]
    return struct(
        _strata_object__=True,
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
        actions=_make_actions(owner),
        runfiles=runfiles,
        resolve_tools=resolve_tools,
        expand_location=expand_location,
        configuration=struct(
            _strata_object__=True,
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


# ---- the analysis driver -----------------------------------------------------


def _target(label, providers, key=None):
    t = {"__label__": label, "__key__": key or label}
    for p in providers:
        t[p._strata_provider__] = p
    return t


def _default_info_from(d, runs=None):
    """DefaultInfo from the engine's file records; `runs`: a file target's own file, which
    is its files_to_run.executable in Bazel (without making the target executable)."""
    exe = _file(d["executable"]) if d["executable"] != None else None
    return DefaultInfo(
        files=depset([_file(f) for f in d["files"]]),
        runfiles=_runfiles(files=[_file(f) for f in d["runfiles"]]),
        executable=exe,
        _strata_runs__=_file(runs) if runs != None else None,
    )


def _report(label, t):
    info = t[_DEFAULT_INFO[0]]
    groups = {}
    og = t.get(_OUTPUT_GROUP_INFO[0])
    if og != None:
        groups = {k: [f.path for f in v.to_list()] for k, v in og._groups.items()}
    runfiles = info.default_runfiles.files.to_list() if info.default_runfiles != None else []
    _strata_report(
        label,
        {
            "files": [f.path for f in info.files.to_list()],
            "executable": info.executable.path if info.executable != None else None,
            "runfiles": [f.path for f in runfiles],
            "output_groups": groups,
        },
    )


def _run_rule(rule, t, results):
    ctx = _make_ctx(rule, t, results)
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
    target = _target(t["label"], ret, t["key"])
    for p in rule.provides:
        if p not in target:
            fail(
                "%s: rule declares provides=%s but its implementation did not return one of them; return it from the implementation"
                % (t["label"], rule.provides)
            )
    predeclared = [_file(f) for f in t["predeclared"]]
    exe = _file(t["executable"]) if t["executable"] != None else None
    info = target.get(_DEFAULT_INFO[0])
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
    runfiles = info.default_runfiles if info.default_runfiles != None else _runfiles()
    target[_DEFAULT_INFO[0]] = DefaultInfo(
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
    for t in _strata_batch(batch):
        label = t["label"]
        key = t["key"]  # the label, configured: "//pkg:name (host)" in the host configuration
        kind = t["kind"]
        if kind == "alias":
            results[key] = _dep(results, t, t["actual"])
        elif kind == "rule":
            rule = registries[t["registry"]]["rules"][t["rule"]]
            results[key] = _run_rule(rule, t, results)
        else:
            info = _strata_native(key)
            results[key] = _target(label, [_default_info_from(info)], key)
        _report(key, results[key])


# ---- repository rules --------------------------------------------------------


def _path(p):
    d = _strata_repo_path(
        p
        if type(p) == "string"
        else (p._strata_path__ if hasattr(p, "_strata_path__") else p._strata_label__)
    )
    return struct(
        _strata_path__=d["path"], basename=d["basename"], dirname=d["dirname"], exists=d["exists"]
    )


def _p(x):
    if type(x) == "struct" and hasattr(x, "_strata_path__"):
        return x._strata_path__
    if type(x) == "struct" and hasattr(x, "_strata_label__"):
        return _strata_repo_path(x._strata_label__)["path"]
    return x


def run_repository_rule__(registries, registry, index, name, attrs):
    impl = registries[registry]["repo_rules"][index]

    def execute(arguments, timeout=600, environment={}, quiet=True, working_directory=""):
        r = _strata_repo_execute(
            [_p(a) for a in arguments], environment, working_directory, timeout
        )
        return struct(return_code=r["return_code"], stdout=r["stdout"], stderr=r["stderr"])

    def which(program):
        w = _strata_repo_which(program)
        return _path(w) if w != None else None

    attr_values = {
        k: (_label(v) if type(v) == "dict" and "canonical" in v else v) for k, v in attrs.items()
    }
    rctx = struct(
        name=name,
        attr=struct(**attr_values),
        path=_path,
        file=lambda path, content="", executable=True, legacy_utf8=True: _strata_repo_file(
            _p(path), content, executable
        ),
        template=lambda path, template, substitutions={}, executable=True: _strata_repo_template(
            _p(path), _p(template), substitutions, executable
        ),
        symlink=lambda target, link_name: _strata_repo_symlink(_p(target), _p(link_name)),
        read=lambda path: _strata_repo_read(_p(path)),
        execute=execute,
        which=which,
        os=struct(name="linux", environ=_strata_repo_environ()),
        report_progress=lambda status: None,
        delete=lambda path: _strata_repo_delete(_p(path)),
    )
    impl(rctx)


# ---- BUILD and WORKSPACE functions (native) --------------------------------


def glob(include=[], exclude=[], exclude_directories=1, allow_empty=True):
    return _strata_glob(include, exclude, exclude_directories, allow_empty)


def package_name():
    return _strata_package_name()


def repository_name():
    return _strata_repository_name()


def existing_rules():
    return _strata_existing_rules()


def existing_rule(name):
    return _strata_existing_rules().get(name)


def _native_rule(kind):
    def instantiate(name = None, **kwargs):
        _strata_native_rule(kind, name, kwargs, call_stack())

    return instantiate


genrule = _native_rule("genrule")
filegroup = _native_rule("filegroup")
alias = _native_rule("alias")
sh_binary = _native_rule("sh_binary")
sh_test = _native_rule("sh_test")
py_binary = _native_rule("py_binary")
config_setting = _native_rule("config_setting")


def exports_files(srcs, visibility=None, licenses=None):
    _strata_exports_files(srcs)


def workspace(name):
    _strata_workspace(name)


def local_repository(name, path, **kwargs):
    _strata_local_repository(name, path, None)


def new_local_repository(name, path, build_file=None, build_file_content=None, **kwargs):
    _strata_local_repository(
        name, path, {"build_file": _plain(build_file), "build_file_content": build_file_content}
    )


def bind(name, actual=None):
    pass


def register_toolchains(*labels):
    pass


def register_execution_platforms(*labels):
    pass


native = struct(
    glob=glob,
    package_name=package_name,
    repository_name=repository_name,
    existing_rules=existing_rules,
    existing_rule=existing_rule,
    genrule=genrule,
    filegroup=filegroup,
    alias=alias,
    sh_binary=sh_binary,
    sh_test=sh_test,
    py_binary=py_binary,
    config_setting=config_setting,
    exports_files=exports_files,
    local_repository=local_repository,
    new_local_repository=new_local_repository,
    bind=bind,
    register_toolchains=register_toolchains,
    register_execution_platforms=register_execution_platforms,
)


def package(**kwargs):
    """Package defaults (visibility, features) do not change what strata builds."""
    pass


def licenses(license_types):
    pass


def package_group(name, packages=[], includes=[]):
    """Visibility groups: strata does not check visibility."""
    pass
