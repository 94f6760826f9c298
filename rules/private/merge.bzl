"""merge_images (dockerTools.mergeImages): one docker-archive holding several images."""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "TOOL_ATTRS", "base_blobs_of", "label_fail", "run_strata", "single_image_file", "with_base_blobs")

def _merge_input(ctx, attr_name, dep):
    """The OCI layout of an image target (its docker-archive is not needed), or the one file of another target."""
    if ImageInfo in dep:
        if dep[ImageInfo].image_info == None:
            label_fail(ctx, attr_name, "an OCI index has no docker-archive", "an image_index", "merge per-platform images")
        return dep[ImageInfo].oci_layout
    return single_image_file(ctx, attr_name, dep, "each image must be an image target, one docker-archive or one OCI layout")

def _merge_images_impl(ctx):
    if len(ctx.attr.images) < 1:
        label_fail(ctx, "images", "must list at least one image", "[]", "list the images to merge")
    archives = [_merge_input(ctx, "images", d) for d in ctx.attr.images]
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    blobs = base_blobs_of(ctx.attr.images)
    run_strata(
        ctx,
        "ImageMerge",
        with_base_blobs({"images": [a.path for a in archives], "output": out.path}, blobs),
        depset(archives, transitive = [blobs]),
        [out],
        "images into",
        execution_requirements = NO_REMOTE_CACHE,
    )
    # Each image target's own SBOM (the archive holds those images unchanged).
    sbom = depset(transitive = [d[ImageInfo].sbom for d in ctx.attr.images if ImageInfo in d])
    return [DefaultInfo(files = depset([out])), OutputGroupInfo(sbom = sbom)]

merge_images = rule(
    implementation = _merge_images_impl,
    doc = """dockerTools.mergeImages: `docker load -i merged.tar` loads every image.

```starlark
load("@strata//rules:defs.bzl", "merge_images")
merge_images(name = "both", images = [":hello", ":layered"])
```
Layers two images share are stored once.""",
    attrs = dict(TOOL_ATTRS, **{
        "images": attr.label_list(mandatory = True, allow_files = True, doc = "Image targets (their OCI layouts are read), docker-archives (each may hold several images) or OCI layouts of one image."),
    }),
)
