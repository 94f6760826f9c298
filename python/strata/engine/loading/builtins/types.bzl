"""`type()` as Bazel 4.2.3 answers it, for engine values that are structs or dicts here.

Loads nothing, so depset.bzl (for its error messages) and the prelude (through
exports.bzl) both use this one table.
"""

_TYPES = [
    ("_strata_depset__", "depset"),
    ("_strata_file__", "File"),
    ("_strata_label__", "Label"),
    ("_strata_args__", "Args"),
    ("_strata_type__", None),
]


def type__(x):
    """`type(x)` as Bazel 4.2.3 names the values that are structs or dicts here: depset,
    File, Label, Args, ctx, actions, configuration, runfiles, DefaultInfo,
    OutputGroupInfo and Target (a provider's own instances stay "struct", as there)."""
    t = type(x)
    if t == "dict" and "__label__" in x and "__key__" in x:
        return "Target"
    if t != "struct":
        return t
    for marker, name in _TYPES:
        if hasattr(x, marker):
            return name or getattr(x, marker)
    return t
