"""The `/v2/` front door: the OCI Distribution v1.1 HTTP API over the registry services."""
