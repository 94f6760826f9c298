"""image_index: a multi-architecture image (OCI image index) from per-platform images."""

load("//rules:providers.bzl", "ImageInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "TOOL_ATTRS", "default_image_name", "label_fail", "run_strata")

def _image_index_impl(ctx):
    infos = [d[ImageInfo] for d in ctx.attr.images]
    if len(infos) < 1:
        label_fail(ctx, "images", "must list at least one image", "[]", "list one image per platform")
    layouts = [i.oci_layout for i in infos]
    out = ctx.actions.declare_directory(ctx.label.name + ".oci")
    name = default_image_name(ctx)
    run_strata(
        ctx,
        "ImageIndex",
        {"images": [l.path for l in layouts], "name": name, "output": out.path, "tag": ctx.attr.tag},
        depset(layouts),
        [out],
        "multi-architecture index",
        execution_requirements = NO_REMOTE_CACHE,
    )
    # The index with each platform's SBOMs as referrers of that platform's manifest: what
    # image_push(push_sbom = True) pushes. Only when every image has its SBOM layout.
    referrers = [getattr(i, "sbom_layout", None) for i in infos]
    sbom_layout = None
    if all(referrers):
        sbom_layout = ctx.actions.declare_directory(ctx.label.name + ".sbom.oci")
        run_strata(
            ctx,
            "ImageIndex",
            {
                "images": [l.path for l in layouts],
                "name": name,
                "output": sbom_layout.path,
                "referrers": [r.path for r in referrers],
                "tag": ctx.attr.tag,
            },
            depset(layouts + referrers),
            [sbom_layout],
            "multi-architecture index with SBOMs",
            execution_requirements = NO_REMOTE_CACHE,
            request_name = ctx.label.name + ".sbom.ImageIndex.request.json",
        )
    sbom = depset([sbom_layout] if sbom_layout else [], transitive = [i.sbom for i in infos])
    return [
        DefaultInfo(files = depset([out])),
        # Each platform's image has its own SBOM (its manifest is the one the index lists).
        OutputGroupInfo(oci = depset([out]), sbom = sbom),
        ImageInfo(
            docker_archive = None,
            oci_layout = out,
            image_info = None,
            name = name,
            tag = ctx.attr.tag,
            architecture = ",".join([i.architecture for i in infos]),
            store_paths = depset(transitive = [i.store_paths for i in infos]),
            sbom = sbom,
            sbom_layout = sbom_layout,
            # The shallow bases' layers, which the index's layout lists but lacks.
            base_blobs = depset(transitive = [i.base_blobs for i in infos if getattr(i, "base_blobs", None) != None]),
        ),
    ]

image_index = rule(
    implementation = _image_index_impl,
    doc = """A multi-architecture image: one OCI image layout whose index lists each platform's image.

```starlark
load("@strata//rules:defs.bzl", "image_index", "layered_image")
layered_image(name = "app_amd64", contents = [":app"], architecture = "amd64")
layered_image(name = "app_arm64", contents = [":app_arm"], architecture = "arm64")
image_index(name = "app", images = [":app_amd64", ":app_arm64"], tag = "1.0")
```
Output: `app.oci`, an OCI layout; `index.json` names the index `tag` and each
platform's manifest `tag-<arch>` (e.g. `1.0-amd64`). `podman pull oci:app.oci:1.0`
picks the host's platform; `image_push` pushes the index.""",
    attrs = dict(TOOL_ATTRS, **{
        "images": attr.label_list(mandatory = True, providers = [ImageInfo], doc = "One image target per platform (their `architecture` must differ)."),
        "image_name": attr.string(doc = "Repository name; default <package>/<name>."),
        "tag": attr.string(default = "latest", doc = "Ref name of the index in the layout."),
    }),
)
