"""Providers: provider(), DefaultInfo, OutputGroupInfo, and the Target they make up.

A provider is its constructor function; each instance carries it under
`_strata_provider__`, and a Target is a dict from provider to instance (plus
its label and configured key), so `dep[DefaultInfo]` is a dict lookup.
"""

load(":depset.bzl", "depset", "is_depset__")


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
    if files != None and not is_depset__(files):
        fail("DefaultInfo: 'files' must be a depset (got %s); wrap it: depset([...])" % type(files))
    return struct(
        _strata_provider__=_DEFAULT_INFO[0],
        _strata_type__="DefaultInfo",
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
        groups[k] = v if is_depset__(v) else depset(v)
    return struct(
        _strata_provider__=_OUTPUT_GROUP_INFO[0],
        _strata_type__="OutputGroupInfo",
        _groups=groups,
        **groups
    )


_OUTPUT_GROUP_INFO = [_output_group_info]
OutputGroupInfo = _output_group_info


def target__(label, providers, key=None):
    t = {"__label__": label, "__key__": key or label}
    for p in providers:
        t[p._strata_provider__] = p
    return t
