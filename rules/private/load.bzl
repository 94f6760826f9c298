"""image_load: an executable that loads an image into Docker (only the layers it lacks) or podman."""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "SCHEMA_VERSION", "TOOL_ATTRS", "WHOLE_LAYOUT_SH", "base_blobs_of", "blob_dirs_word", "check_name", "label_fail", "label_str", "single_image_file", "sorted_dict")
load(":names.bzl", "shell_quote")

# Every value is shell_quote()d into a variable first; the script proper only expands those
# variables inside double quotes, so no value (a label, a file name, a ref) is read as shell.
_SCRIPT = """#!/bin/sh
# image_load (written by @strata//rules/private:load.bzl): loads an image into docker or podman.
set -eu
label={label}
image={image}
name={name}
ref={ref}
loader={loader}
layout={layout}
blob_dirs={blob_dirs}
strata={strata}
request={request}
{whole_layout}
tool="${{STRATA_LOADER:-$loader}}"
cd "${{RUNFILES_DIR:-$0.runfiles}}/"{workspace} 2>/dev/null || cd "$0.runfiles/"{workspace}
case "$tool" in
  docker|podman) ;;
  *) echo "error: $label: attribute 'loader': must be docker or podman (got $tool); set STRATA_LOADER or loader" >&2; exit 1 ;;
esac
# Say which loader is missing or not answering, rather than failing halfway through a load.
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "error: $label: no $tool program on PATH (got PATH=${{PATH:-}}); install $tool, or set STRATA_LOADER to the other of docker and podman" >&2
  exit 1
fi
if ! "$tool" info >/dev/null 2>&1; then
  if [ "$tool" = docker ]; then
    echo "error: $label: no docker daemon answers (got DOCKER_HOST=${{DOCKER_HOST:-unix:///var/run/docker.sock}}); start it, set DOCKER_HOST, or STRATA_LOADER=podman" >&2
  else
    echo "error: $label: podman does not answer (got podman info failing, CONTAINERS_CONF=${{CONTAINERS_CONF:-}}); check its configuration with podman info, or STRATA_LOADER=docker" >&2
  fi
  exit 1
fi
if [ "$tool" = podman ] && [ -n "$layout" ]; then
  # An image target's OCI layout: podman pull skips the blobs its storage has, where
  # podman load would copy and read the whole docker-archive.
  image="$layout"
  ref=
fi
if [ -d "$image" ]; then
  # An OCI layout (e.g. an image_index): podman reads it directly; docker cannot.
  [ "$tool" = podman ] || {{ echo "error: $label: docker cannot load an OCI layout (got $image); use loader = \\"podman\\" or a docker-archive" >&2; exit 1; }}
  # podman names an image pulled from a layout after the layout's path (localhost/<path>),
  # and refuses a path that is no valid image name (capitals, "+", "@"): pull through a
  # link at a path of our own, then take that name off, leaving only $name.
  n=$$
  until mkdir -m 0700 "/tmp/strata-load-$n" 2>/dev/null; do
    n=$((n + 1))
    if [ $((n - $$)) -gt 100 ]; then
      echo "error: $label: cannot make a directory to load from (got no new /tmp/strata-load-$n); check that /tmp is writable" >&2
      exit 1
    fi
  done
  link="/tmp/strata-load-$n/layout"
  trap 'rm -rf "/tmp/strata-load-$n"' EXIT
  if [ -n "$blob_dirs" ]; then
    # On a shallow base the layout lacks the base's layers: the BaseBlobs action's serve.
    whole_layout "$image" "$link" "$blob_dirs"
  else
    ln -s "$PWD/$image" "$link"
  fi
  id="$(podman pull -q "$@" "oci:$link${{ref:+:$ref}}")"
  podman tag "$id" "$name"
  for pulled in $(podman image inspect --format '{{{{range .RepoTags}}}}{{{{println .}}}}{{{{end}}}}' "$id"); do
    case "$pulled" in "localhost$link:"*) podman untag "$id" "$pulled" ;; esac
  done
  echo "Loaded image: $name"
  exit 0
fi
# Into docker, with no arguments to pass on: only the layers the daemon lacks (ImageLoad).
if [ "$tool" = docker ] && [ $# -eq 0 ]; then
  exec "$PWD/$strata" action ImageLoad "@$PWD/$request"
fi
exec "$tool" load "$@" -i "$PWD/$image"
"""

def _loaded_name(image_name, ref):
    """What the loaded image is called: `<image name>:<ref>`, or `ref` itself when it is a `name:tag`."""
    if ref and ("/" in ref or ":" in ref):
        return ref if ref.rfind(":") > ref.rfind("/") else ref + ":latest"
    return "%s:%s" % (image_name, ref or "latest")

def _image_load_impl(ctx):
    if ctx.attr.ref:
        check_name(ctx, "ref", "reference", ctx.attr.ref)
    dep = ctx.attr.image
    layout = None
    if ImageInfo in dep:
        info = dep[ImageInfo]
        image = info.docker_archive or info.oci_layout
        if info.docker_archive:
            layout = info.oci_layout
        name = _loaded_name(info.name, ctx.attr.ref or info.tag)
    else:
        image = single_image_file(ctx, "image", dep)
        name = _loaded_name("%s/%s" % (ctx.label.package, ctx.label.name), ctx.attr.ref)
    # A shallow base's layers, for podman (a docker-archive holds them already).
    blob_dirs = base_blobs_of([dep])
    req = {"image": image.short_path, "label": label_str(ctx.label), "schema_version": SCHEMA_VERSION}
    request = ctx.actions.declare_file(ctx.label.name + ".load.json")
    ctx.actions.write(request, json.encode(sorted_dict(req)) + "\n")
    # Named after the target: the executable output both engines expect.
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(exe, _SCRIPT.format(
        label = shell_quote(label_str(ctx.label)),
        name = shell_quote(name.lstrip("/")),
        image = shell_quote(image.short_path),
        layout = shell_quote(layout.short_path if layout else ""),
        blob_dirs = blob_dirs_word(blob_dirs),
        whole_layout = WHOLE_LAYOUT_SH,
        loader = shell_quote(ctx.attr.loader),
        ref = shell_quote(ctx.attr.ref),
        request = shell_quote(request.short_path),
        strata = shell_quote(ctx.executable._strata.short_path),
        workspace = shell_quote(ctx.workspace_name),
    ), is_executable = True)
    runfiles = ctx.runfiles(files = [image, request, ctx.executable._strata] + ([layout] if layout else []), transitive_files = blob_dirs)
    runfiles = runfiles.merge(ctx.attr._strata[DefaultInfo].default_runfiles)
    return [DefaultInfo(executable = exe, runfiles = runfiles)]

_LOAD_ATTRS = {
    "image": attr.label(mandatory = True, allow_files = True, doc = "The image: an image target (its docker-archive, which the image's rule then writes), merge_images, image_index, or one docker-archive / OCI layout."),
    "loader": attr.string(default = "docker", values = ["docker", "podman"], doc = "Which engine loads it."),
    "ref": attr.string(doc = "For an OCI layout: the reference name in its index.json to pull, a tag or a `name[:tag]` (checked against the reference grammar); the loaded image is tagged `<name>:<ref>`, or `ref` itself when it is a `name:tag`."),
}
_LOAD_ATTRS.update(TOOL_ATTRS)

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
(`docker info` / `podman info`) and otherwise fails naming this target.

A docker-archive goes to `docker load` without the layers the daemon already
has: the run asks the daemon which layers its images hold (by chain ID) and
streams the archive with those members left out, which Docker's loader never
opens (Docker's own layer store, as in 20.10). It prints `docker load`'s
output and, on stderr, `sent <n> bytes of the <size>-byte image archive: <k> of
<m> layers (the daemon had <m-k>)`. When the daemon cannot be asked (or keeps
images in containerd, which wants every layer), or the partial load fails (a
layer removed meanwhile), it sends the full archive with a one-line note.
Arguments (`bazel run //app:load -- -q`) go to a plain `docker load` of the
full archive.

Into podman, an image target's OCI layout goes to `podman pull oci:DIR`, which
skips the blobs podman's storage has (`podman load` would copy and read the
whole archive); another docker-archive to `podman load`; an image_index's
layout (or another OCI layout) to `podman pull oci:DIR:REF`, which picks the
host's platform from an index. On a shallow base (`pull_image`'s default) the
layout lacks the base's layers: the run pulls from a layout of links to its files
and to the layers the base's BaseBlobs action fetched (a runfile of this target,
so building it fetches them). What is pulled is tagged with the image's name
(and `ref`), and only that name: the one podman derives from the layout's path
is removed.""",
    attrs = _LOAD_ATTRS,
)
