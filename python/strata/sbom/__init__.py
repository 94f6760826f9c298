"""Software bills of materials (SPDX 2.3, CycloneDX 1.5) from an image's store-path graph."""
