"""image_load: an executable that streams an image into `docker load` or `podman load`."""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "label_fail", "label_str")

_SCRIPT = """#!/bin/sh
# image_load {label}: loads {image} into docker or podman
# (written by @strata//rules/private:load.bzl).
set -eu
tool="${{STRATA_LOADER:-{loader}}}"
cd "${{RUNFILES_DIR:-$0.runfiles}}/{workspace}" 2>/dev/null || cd "$0.runfiles/{workspace}"
case "$tool" in
  docker|podman) ;;
  *) echo "error: {label}: attribute 'loader': must be docker or podman (got $tool); set STRATA_LOADER or loader" >&2; exit 1 ;;
esac
# Say which loader is missing or not answering, rather than failing halfway through a load.
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "error: {label}: no $tool program on PATH (got PATH=${{PATH:-}}); install $tool, or set STRATA_LOADER to the other of docker and podman" >&2
  exit 1
fi
if ! "$tool" info >/dev/null 2>&1; then
  if [ "$tool" = docker ]; then
    echo "error: {label}: no docker daemon answers (got DOCKER_HOST=${{DOCKER_HOST:-unix:///var/run/docker.sock}}); start it, set DOCKER_HOST, or STRATA_LOADER=podman" >&2
  else
    echo "error: {label}: podman does not answer (got podman info failing, CONTAINERS_CONF=${{CONTAINERS_CONF:-}}); check its configuration with podman info, or STRATA_LOADER=docker" >&2
  fi
  exit 1
fi
if [ -d "{image}" ]; then
  # An OCI layout (e.g. an image_index): podman reads it directly; docker cannot.
  [ "$tool" = podman ] || {{ echo "error: {label}: docker cannot load an OCI layout (got {image}); use loader = \\"podman\\" or a docker-archive" >&2; exit 1; }}
  id="$(podman pull -q "$@" "oci:$PWD/{image}{ref}")"
  podman tag "$id" "{name}"
  echo "Loaded image: {name}"
  exit 0
fi
exec "$tool" load "$@" -i "$PWD/{image}"
"""

def _image_load_impl(ctx):
    dep = ctx.attr.image
    name = ""
    if ImageInfo in dep:
        info = dep[ImageInfo]
        image = info.docker_archive or info.oci_layout
        name = "%s:%s" % (info.name, ctx.attr.ref or info.tag or "latest")
    else:
        files = dep[DefaultInfo].files.to_list()
        if len(files) != 1:
            label_fail(ctx, "image", "must be an image target or one docker-archive / OCI layout", "%d files" % len(files), "point at one image")
        image = files[0]
    if not name:
        name = "%s/%s:%s" % (ctx.label.package, ctx.label.name, ctx.attr.ref or "latest")
    # Named after the target: the executable output both engines expect.
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(exe, _SCRIPT.format(
        label = label_str(ctx.label),
        name = name.lstrip("/"),
        image = image.short_path,
        loader = ctx.attr.loader,
        ref = (":" + ctx.attr.ref) if ctx.attr.ref else "",
        workspace = ctx.workspace_name,
    ), is_executable = True)
    return [DefaultInfo(executable = exe, runfiles = ctx.runfiles(files = [image]))]

image_load = rule(
    implementation = _image_load_impl,
    executable = True,
    doc = """Loads an image into Docker or podman: `bazel run //app:load` / `strata run //app:load`.

```starlark
image_load(name = "load", image = ":app")
image_load(name = "load_index", image = ":multiarch", loader = "podman", ref = "latest")
```
The loader is `loader`, overridden by the STRATA_LOADER environment variable at
run time; the script first checks that the loader is on PATH and answers
(`docker info` / `podman info`) and otherwise fails naming this target. A docker-archive goes to `docker load` / `podman load`; an OCI layout
(an `image_index`'s output) to `podman pull oci:DIR:REF`, which picks the
host's platform from an index, and is tagged with the image's name and `ref`.""",
    attrs = {
        "image": attr.label(mandatory = True, allow_files = True, doc = "The image: an image target (its docker-archive), merge_images, image_index, or one docker-archive / OCI layout."),
        "loader": attr.string(default = "docker", values = ["docker", "podman"], doc = "Which engine loads it."),
        "ref": attr.string(doc = "For an OCI layout: the reference name (tag) in its index.json to pull; the loaded image is tagged `<name>:<ref>`."),
    },
)
