"""Cryptographic building blocks for data at rest (no I/O, no services)."""
