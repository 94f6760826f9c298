"""attr.* and config.*: attribute and build-setting declarations, and their schemas.

An attribute is a struct of its spec; `attr_schema__` turns a rule's attrs into
the plain dicts the engine checks values against (attr_check.py), keeping the
provider lists, which may hold provider functions, here.
"""

load(":values.bzl", "label_string__", "plain__")


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


def attr_schema__(attrs):
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
                plain__(d["default"])
                if d["type"] != "label_keyed_string_dict"
                else {label_string__(k): v for k, v in d["default"].items()}
            )
        schema[name] = d
        if getattr(spec, "providers", None):
            providers[name] = spec.providers
    return schema, providers
