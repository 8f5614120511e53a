"""The pull-through cache: rules mapping a repository prefix to an upstream registry
(`rules`), the database leases that make one upstream fetch per blob (`fills`), and the cache
itself (`cache`): manifests fetched and stored through `ManifestService.put_image`, blobs
streamed to the client while they are stored."""
