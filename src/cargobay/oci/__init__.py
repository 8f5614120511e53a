"""Pure OCI domain logic: digests, names, media types, manifests. No I/O, no imports from
the rest of cargobay, so both front doors and every backend can rely on it."""
