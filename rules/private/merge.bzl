"""merge_images (dockerTools.mergeImages): one docker-archive holding several images."""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "TOOL_ATTRS", "label_fail", "run_strata")

def image_archive(ctx, attr_name, dep):
    """The docker-archive of an image target, or the one file of another target."""
    if ImageInfo in dep:
        if dep[ImageInfo].docker_archive == None:
            label_fail(ctx, attr_name, "an OCI index has no docker-archive", "an image_index", "merge per-platform images")
        return dep[ImageInfo].docker_archive
    files = dep[DefaultInfo].files.to_list()
    if len(files) != 1:
        label_fail(ctx, attr_name, "each image must be an image target or one docker-archive", "%d files" % len(files), "point at one image")
    return files[0]

def _merge_images_impl(ctx):
    if len(ctx.attr.images) < 1:
        label_fail(ctx, "images", "must list at least one image", "[]", "list the images to merge")
    archives = [image_archive(ctx, "images", d) for d in ctx.attr.images]
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    run_strata(
        ctx,
        "ImageMerge",
        {"images": [a.path for a in archives], "output": out.path},
        depset(archives),
        [out],
        "images into",
        execution_requirements = NO_REMOTE_CACHE,
    )
    return [DefaultInfo(files = depset([out]))]

merge_images = rule(
    implementation = _merge_images_impl,
    doc = """dockerTools.mergeImages: `docker load -i merged.tar` loads every image.

```starlark
load("@strata//rules:defs.bzl", "merge_images")
merge_images(name = "both", images = [":hello", ":layered"])
```
Layers two images share are stored once.""",
    attrs = dict(TOOL_ATTRS, **{
        "images": attr.label_list(mandatory = True, allow_files = True, doc = "Image targets or docker-archives (each may hold several images)."),
    }),
)
