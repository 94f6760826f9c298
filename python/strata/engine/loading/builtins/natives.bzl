"""BUILD and WORKSPACE functions, and `native` for macros.

Each is a thin call into the engine (packages.py, workspace.py); functions
that change nothing strata builds (package, licenses, bind, ...) do nothing.
"""

load(":bridge.bzl", "strata")
load(":values.bzl", "plain__")


def select(conditions, no_match_error=""):
    return strata.select(conditions, no_match_error)


def glob(include=[], exclude=[], exclude_directories=1, allow_empty=True):
    return strata.glob(include, exclude, exclude_directories, allow_empty)


def package_name():
    return strata.package_name()


def repository_name():
    return strata.repository_name()


def existing_rules():
    return strata.existing_rules()


def existing_rule(name):
    return strata.existing_rules().get(name)


def _native_rule(kind):
    def instantiate(name = None, **kwargs):
        strata.native_rule(kind, name, kwargs, call_stack())

    return instantiate


genrule = _native_rule("genrule")
filegroup = _native_rule("filegroup")
alias = _native_rule("alias")
sh_binary = _native_rule("sh_binary")
sh_test = _native_rule("sh_test")
py_binary = _native_rule("py_binary")
config_setting = _native_rule("config_setting")


def exports_files(srcs, visibility=None, licenses=None):
    strata.exports_files(srcs)


def workspace(name):
    strata.workspace(name)


def local_repository(name, path, **kwargs):
    strata.local_repository(name, path, None)


def new_local_repository(name, path, build_file=None, build_file_content=None, **kwargs):
    strata.local_repository(
        name, path, {"build_file": plain__(build_file), "build_file_content": build_file_content}
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
