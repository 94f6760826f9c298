"""export_image (dockerTools.exportImage): an image's root filesystem as one tar."""

load(":common.bzl", "NO_REMOTE_CACHE", "TOOL_ATTRS", "base_blobs_of", "run_strata", "with_base_blobs")
load(":image_layers.bzl", "image_source")

def _export_image_impl(ctx):
    src, f = image_source(ctx, "image", ctx.attr.image, ctx.attr.image_ref)
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    req = {"image": src["path"], "output": out.path}
    if src["name"]:
        req["name"] = src["name"]
    if ctx.attr.architecture:
        req["architecture"] = ctx.attr.architecture
    blobs = base_blobs_of([ctx.attr.image])
    run_strata(ctx, "ImageExport", with_base_blobs(req, blobs), depset([f], transitive = [blobs]), [out], "root filesystem of", execution_requirements = NO_REMOTE_CACHE)
    return [DefaultInfo(files = depset([out]))]

export_image = rule(
    implementation = _export_image_impl,
    doc = """dockerTools.exportImage: the image's layers applied in order (whiteouts honoured) as one tar.

```starlark
load("@strata//rules:defs.bzl", "export_image")
export_image(name = "rootfs", image = ":app")   # rootfs.tar
```""",
    attrs = dict(TOOL_ATTRS, **{
        "image": attr.label(mandatory = True, allow_files = True, doc = "An image target, a pulled image, or one docker-archive / OCI layout."),
        "image_ref": attr.string(doc = "Pick one image of a multi-image archive or layout: `name:tag` (or the OCI ref name)."),
        "architecture": attr.string(doc = "Pick this architecture from a multi-platform layout (x86_64, aarch64, amd64, arm64, ...)."),
    }),
)
