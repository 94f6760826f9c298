"""image_load: an executable that streams an image into `docker load` or `podman load`."""

load("//rules:providers.bzl", "ImageInfo")

_SCRIPT = """#!/bin/sh
# image_load {label}: loads {archive} into docker or podman.
set -eu
tool="${{STRATA_LOADER:-{loader}}}"
here="$0.runfiles/{workspace}"
[ -d "$here" ] || here="${{RUNFILES_DIR:-$PWD}}/{workspace}"
[ -f "$here/{archive}" ] || here="$PWD"
case "$tool" in
  docker|podman) ;;
  *) echo "error: {label}: loader must be docker or podman (got $tool); set STRATA_LOADER or the loader attribute" >&2; exit 1 ;;
esac
exec "$tool" load "$@" -i "$here/{archive}"
"""

def _image_load_impl(ctx):
    image = ctx.attr.image[ImageInfo]
    exe = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(exe, _SCRIPT.format(
        label = ctx.label,
        archive = image.docker_archive.short_path,
        loader = ctx.attr.loader,
        workspace = ctx.workspace_name,
    ), is_executable = True)
    return [DefaultInfo(executable = exe, runfiles = ctx.runfiles(files = [image.docker_archive]))]

image_load = rule(
    implementation = _image_load_impl,
    executable = True,
    doc = """Loads an image into Docker (or podman): `bazel run //app:load` / `strata run //app:load`.

```starlark
image_load(name = "load", image = ":app")
```
The loader is `loader`, overridden by the STRATA_LOADER environment variable at run time.""",
    attrs = {
        "image": attr.label(mandatory = True, providers = [ImageInfo], doc = "The image to load."),
        "loader": attr.string(default = "docker", values = ["docker", "podman"], doc = "Which engine's `load` to run."),
    },
)
