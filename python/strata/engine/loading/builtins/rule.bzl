"""rule() and repository_rule(): each module's prelude wraps these with its registry.

A rule's implementation stays in the declaring module's `strata_registry__`
(Starlark functions cannot reach Python); the engine gets its schema and
identifies it by (module, index). Calling the rule declares a target.
"""

load(":attrs.bzl", "attr_schema__")
load(":bridge.bzl", "strata")


def make_rule__(registry, implementation, attrs, kwargs):
    schema, attr_providers = attr_schema__(attrs)
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
    strata.rule_schema(
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
        strata.add_target(module, index, name, attrs, call_stack())

    return instantiate


def make_repository_rule__(registry, implementation, attrs, kwargs):
    schema, _ = attr_schema__(attrs)
    index = len(registry["repo_rules"])
    registry["repo_rules"].append(implementation)
    module = registry["module"]

    environ = kwargs.get("environ", [])
    strata.repository_rule_schema(module, index, schema, {"doc": kwargs.get("doc", "")})

    def instantiate(name = None, **attrs):
        strata.add_repository(module, index, name, schema, attrs, environ)

    return instantiate
