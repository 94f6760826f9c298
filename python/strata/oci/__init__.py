"""Container image formats: tar layers, digests, configs, manifests, docker-archive, OCI layout."""
