"""ctx.actions.args(): an Args object, expanded to strings when its action is made.

`map_each` functions are called here, at expansion; a param file (`use_param_file`
with `use_always`) becomes a file the engine writes.
"""

load(":bridge.bzl", "strata")
load(":depset.bzl", "to_list__")
load(":values.bzl", "is_file__", "label_string__")


def args_expand__(args):
    """Expand an Args object into strings, as Bazel does when the action runs."""
    out = []
    for item in args._parts:
        kind = item["kind"]
        if kind == "single":
            out.extend(item["prefix"])
            out.append(_fmt(item["value"], item["format"]))
            continue
        values = to_list__(item["values"])
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


def str_of__(v):
    if is_file__(v):
        return v.path
    return label_string__(v)


def _fmt(v, fmt):
    s = str_of__(v)
    return fmt % s if fmt != None else s


def args__():
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


def arguments__(owner, arguments):
    """argv tail from a list of strings and Args; param files become write actions."""
    out = []
    for a in arguments or []:
        if type(a) == "struct" and hasattr(a, "_strata_args__"):
            expanded = args_expand__(a)
            pf = a._state["param_file"]
            if pf != None and pf[1]:
                path = strata.param_file(owner, expanded, a._state["format"])
                out.append(pf[0] % path)
            else:
                out.extend(expanded)
        else:
            out.append(str_of__(a))
    return out
