"""Providers of the strata rules: metadata passed between targets.

The artifacts themselves (store path trees, layer blobs, OCI layout,
docker-archive) are the contract between rules; these providers point at them.
"""

StorePathInfo = provider(
    doc = "A store path built by `store_path` (or imported by `nix_store_import`), with its cached layer.",
    fields = {
        "name": "The name after `<hash>-` (string); the hash is known only after the build.",
        "store_dir": "Store directory the path lives in (string, e.g. \"/nix/store\").",
        "info": "File: JSON {path, references, narHash, narSize, closure, store_dir} written by the StorePath action.",
        "tree": "File (directory): holds the content as `<tree>/<name>`, unpacked from `layer` by a StoreTree action only when something asks for it (images read `layer`).",
        "layer": "File: the path's own uncompressed layer (the cached unit images share).",
        "descriptor": "File: JSON digests and size of `layer`.",
        "listing": "File or None: JSON of the entries of `layer` (names, kinds, modes, link targets, where data lies), written by the StorePath action so that images need not read the layer's headers; None for `nix_store_import`.",
        "closure": "depset of struct(info, tree, layer, descriptor, listing): this path and every path it references.",
    },
)

LayerInfo = provider(
    doc = "One image layer: a blob and its descriptor.",
    fields = {
        "blob": "File: the layer blob (tar, maybe compressed).",
        "descriptor": "File: JSON {digest, diff_id, size, compressor} of `blob`.",
    },
)

ImageInfo = provider(
    doc = "A built image: what other rules (merge_images, image_load, from_image) consume.",
    fields = {
        "docker_archive": "File: the docker-archive tarball (`docker load -i`), written only when something needs it (from the layers for docker_image and layered_image, from `oci_layout` by an ImageArchive action for run_as_root; take `oci_layout` where it serves); None for an image_index.",
        "oci_layout": "File (directory): the OCI image layout of the image (output group `oci`, written when something needs it; what other image rules read).",
        "image_info": "File: JSON with the image's name, tag, config and manifest digests; None for an image_index.",
        "name": "Image repository name (string).",
        "tag": "Image tag (string, empty: strata picks a content hash).",
        "architecture": "Architecture as given to the rule (string, e.g. \"x86_64\", \"aarch64\"); an image_index's: comma-separated.",
        "store_paths": "depset of struct(info, tree, layer, descriptor, listing): store paths in the image.",
        "sbom": "depset of File: the image's SBOM, `<name>.spdx.json` (SPDX 2.3) and `<name>.cdx.json` (CycloneDX 1.5), made only when asked for (output group `sbom`); an image_index's: its platforms'.",
        "base_blobs": "depset of File (directory): the layer blobs of the image's shallow bases (`pull_image(shallow = True)`), `sha256/<hex>` each, fetched by a BaseBlobs action only when an output holding layer bytes needs them; empty without one.",
        "sbom_layout": "File (directory): `<name>.sbom.oci`, the OCI layout of the image plus its SBOM documents as OCI 1.1 referrers (artifact manifests whose `subject` is the image), in output group `sbom`; what `image_push(push_sbom = True)` pushes. For an image_index, the index with each platform's SBOMs as referrers of its manifest (None if an image has none).",
    },
)

BaseBlobsInfo = provider(
    doc = "A pulled image's layers that a shallow pull left in the registry (`pull_image(shallow = True)`'s `:image`).",
    fields = {
        "blobs": "depset of File (directory): `sha256/<hex>` per layer blob the layout lacks, written by a BaseBlobs action (network, never remote-cached) only when an output holding layer bytes needs it.",
    },
)
