"""The engine's hooks as one object, `strata`: the only way from these files to Python.

The engine adds the `_strata_*` callables below to this module, and to no other,
before evaluating it; every other builtins file loads `strata` and calls, e.g.,
`strata.label(...)`. Hooks take and return plain data (strings, numbers, lists,
dicts; a struct arrives in Python as a dict), never a Starlark function.
"""

strata = struct(
    # loader.py: labels, rule schemas
    label=_strata_label,
    rule_schema=_strata_rule_schema,
    repository_rule_schema=_strata_repository_rule_schema,
    # packages.py: BUILD files
    glob=_strata_glob,
    package_name=_strata_package_name,
    repository_name=_strata_repository_name,
    existing_rules=_strata_existing_rules,
    native_rule=_strata_native_rule,
    add_target=_strata_add_target,
    exports_files=_strata_exports_files,
    select=_strata_select,
    # workspace.py: WORKSPACE and repository rules
    workspace=_strata_workspace,
    local_repository=_strata_local_repository,
    add_repository=_strata_add_repository,
    repo_path=_strata_repo_path,
    repo_file=_strata_repo_file,
    repo_template=_strata_repo_template,
    repo_symlink=_strata_repo_symlink,
    repo_read=_strata_repo_read,
    repo_delete=_strata_repo_delete,
    repo_execute=_strata_repo_execute,
    repo_which=_strata_repo_which,
    repo_environ=_strata_repo_environ,
    # analysis/analysis.py: rule implementations and their actions
    declare=_strata_declare,
    action=_strata_action,
    param_file=_strata_param_file,
    expand_location=_strata_expand_location,
    report=_strata_report,
    native=_strata_native,
    batch=_strata_batch,
)
