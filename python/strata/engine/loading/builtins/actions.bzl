"""ctx.actions: declaring outputs and registering actions with the engine.

Each action is one plain request to `strata.action` (kind write, run,
template or symlink); `run` and `run_shell` differ only in how argv is made.
"""

load(":args.bzl", "args__", "args_expand__", "arguments__", "str_of__")
load(":bridge.bzl", "strata")
load(":depset.bzl", "to_list__")
load(":values.bzl", "file__", "is_file__", "plain__")


def _tool_parts(x):
    """(executable path or None, input paths) of a File, FilesToRunProvider or path."""
    if x == None:
        return None, []
    if type(x) == "string":
        return x, []
    if is_file__(x):
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
    for t in to_list__(tools):
        if is_file__(t):
            files.append(t.path)
        else:
            _, extra = _tool_parts(t)
            exes.extend(extra)
    return files, exes


def make_actions__(owner):
    def declare_file(filename, sibling=None):
        return file__(
            strata.declare(owner, filename, sibling.path if sibling != None else None, False)
        )

    def declare_directory(filename, sibling=None):
        return file__(
            strata.declare(owner, filename, sibling.path if sibling != None else None, True)
        )

    def write(output, content, is_executable=False):
        if type(content) == "struct" and hasattr(content, "_strata_args__"):
            content = "\n".join(args_expand__(content)) + "\n"
        strata.action(
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
        strata.action(
            owner,
            {
                "kind": "run",
                "argv": argv,
                "inputs": inputs,
                "tools": tools,
                "outputs": plain__(outputs),
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
            [exe] + arguments__(owner, arguments),
            plain__(to_list__(inputs)) + tool_inputs,
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
            argv = [str_of__(c) for c in command]
        else:
            argv = ["/bin/bash", "-c", command]
            if arguments:
                argv.append("")
        tool_inputs, tool_exes = _split_tools(tools)
        run_action(
            argv + arguments__(owner, arguments),
            plain__(to_list__(inputs)) + tool_inputs,
            tool_exes,
            outputs,
            mnemonic,
            progress_message,
            use_default_shell_env,
            env,
            execution_requirements,
        )

    def expand_template(template, output, substitutions={}, is_executable=False):
        strata.action(
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
        strata.action(
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
        _strata_type__="actions",
        declare_file=declare_file,
        declare_directory=declare_directory,
        write=write,
        run=run,
        run_shell=run_shell,
        expand_template=expand_template,
        symlink=symlink,
        args=args__,
        do_nothing=do_nothing,
    )
