"""repository_ctx: running one repository rule's implementation.

The engine's fetch driver (workspace.py) loads `run_repository_rule__`; the
file system and process work is done in Python, through `strata.repo_*`.
"""

load(":bridge.bzl", "strata")
load(":values.bzl", "label__")


def _path(p):
    d = strata.repo_path(
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
        return strata.repo_path(x._strata_label__)["path"]
    return x


def run_repository_rule__(registries, registry, index, name, attrs):
    impl = registries[registry]["repo_rules"][index]

    def execute(arguments, timeout=600, environment={}, quiet=True, working_directory=""):
        r = strata.repo_execute(
            [_p(a) for a in arguments], environment, working_directory, timeout
        )
        return struct(return_code=r["return_code"], stdout=r["stdout"], stderr=r["stderr"])

    def which(program):
        w = strata.repo_which(program)
        return _path(w) if w != None else None

    attr_values = {
        k: (label__(v) if type(v) == "dict" and "canonical" in v else v) for k, v in attrs.items()
    }
    rctx = struct(
        name=name,
        attr=struct(**attr_values),
        path=_path,
        file=lambda path, content="", executable=True, legacy_utf8=True: strata.repo_file(
            _p(path), content, executable
        ),
        template=lambda path, template, substitutions={}, executable=True: strata.repo_template(
            _p(path), _p(template), substitutions, executable
        ),
        symlink=lambda target, link_name: strata.repo_symlink(_p(target), _p(link_name)),
        read=lambda path: strata.repo_read(_p(path)),
        execute=execute,
        which=which,
        os=struct(name="linux", environ=strata.repo_environ()),
        report_progress=lambda status: None,
        delete=lambda path: strata.repo_delete(_p(path)),
    )
    impl(rctx)
