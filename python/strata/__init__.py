"""strata: reproducible, layered container images from content-addressed store paths."""

__version__ = "0.1.0"
