"""cargobay: a self-hosted, ECR-compatible OCI container registry."""

__version__ = "0.1.0"
