"""The engine's values in Starlark: Label and File structs, plain data back, dir().

Python hands labels and files over as dicts; these make the structs rules see
(`label__`, `file__`) and turn them back into strings for Python (`plain__`).
"""

load(":bridge.bzl", "strata")
load(":depset.bzl", "is_depset__")


def label__(d):
    return struct(
        _strata_label__=d["canonical"],
        name=d["name"],
        package=d["package"],
        workspace_name=d["workspace_name"],
        workspace_root=d["workspace_root"],
    )


def label_string__(x):
    """`str(x)` as Bazel prints a label or a depset; they would print as structs."""
    if type(x) == "struct" and hasattr(x, "_strata_label__"):
        return x._strata_label__
    if type(x) == "struct" and hasattr(x, "_strata_depset__"):
        order = "" if x._order == "default" else ", order = %r" % x._order
        return "depset(%r%s)" % (x.to_list(), order)
    return str(x)


def file__(d):
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
        owner=label__(d["owner"]),
    )


def is_file__(x):
    return type(x) == "struct" and hasattr(x, "_strata_file__")


def plain__(x):
    """Plain data for Python: depsets flattened, files and labels as strings."""
    if is_depset__(x):
        return [plain__(e) for e in x.to_list()]
    if is_file__(x):
        return x.path
    if type(x) == "struct" and hasattr(x, "_strata_label__"):
        return x._strata_label__
    if type(x) in ("list", "tuple"):
        return [plain__(e) for e in x]
    return x


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


def make_label__(module, text):
    if type(text) == "struct" and hasattr(text, "_strata_label__"):
        return text
    return label__(strata.label(module, text))
