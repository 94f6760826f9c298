"""pulled_image: a shallow `pull_image` repository's `:image` (made by the repository rule).

The layout holds the base's manifest, index and config; its layer blobs stay
in the registry (listed in the layout's `remote-blobs.json`). This rule gives
the layout as its files, and, in `BaseBlobsInfo`, the directory a `BaseBlobs`
action fills with those blobs. Nothing but an output that holds layer bytes
(a docker-archive, export_image, run_as_root, merge_images) asks for it, so
the blobs are downloaded then, and only then.
"""

load("//rules:providers.bzl", "BaseBlobsInfo")
load(":common.bzl", "NO_REMOTE_CACHE", "TOOL_ATTRS", "run_strata")

def _pulled_image_impl(ctx):
    layout = ctx.file.layout
    blobs = ctx.actions.declare_directory(ctx.label.name + ".layer_blobs")
    req = {"image": layout.path, "output": blobs.path}
    if ctx.attr.blob_store:
        req["blob_store"] = ctx.attr.blob_store
    if ctx.attr.ca_file:
        req["ca_file"] = ctx.attr.ca_file
    if not ctx.attr.tls_verify:
        req["tls_verify"] = False
    if ctx.attr.credential_env:
        req["credential_env"] = ctx.attr.credential_env
    run_strata(
        ctx,
        "BaseBlobs",
        req,
        depset([layout]),
        [blobs],
        "base layers of",
        # A download, verified against its digests: the same bytes every time, but not
        # worth a remote cache's space (the registry holds them) and it needs the network.
        # Unsandboxed, as a repository rule's download is: it reads the user's registry
        # logins wherever they live and fills the machine's shared blob store.
        execution_requirements = dict(NO_REMOTE_CACHE, **{"no-sandbox": "1", "requires-network": "1"}),
    )
    return [
        DefaultInfo(files = depset([layout])),
        BaseBlobsInfo(blobs = depset([blobs])),
        OutputGroupInfo(layer_blobs = depset([blobs])),
    ]

pulled_image = rule(
    implementation = _pulled_image_impl,
    doc = """A shallow pull's image (written by `pull_image(shallow = True)` into its repository).

```starlark
pulled_image(name = "image", layout = "oci_layout")
```
`bazel build @base//:image --output_groups=layer_blobs` fetches the layers now.""",
    attrs = dict(TOOL_ATTRS, **{
        "layout": attr.label(mandatory = True, allow_single_file = True, doc = "The pulled OCI layout directory."),
        "blob_store": attr.string(doc = "The shared blob store the pull used (absolute path); empty: the tool's default."),
        "tls_verify": attr.bool(default = True, doc = "As the pull_image's: verify the registry's TLS certificate."),
        "ca_file": attr.string(doc = "As the pull_image's: a PEM file of CAs to trust for the registry."),
        "credential_env": attr.string_dict(doc = "The pull's HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and PATH: where the fetch finds `docker login` / `podman login` credentials (a build action's own environment is PATH alone). Locations only, never a secret."),
    }),
)
