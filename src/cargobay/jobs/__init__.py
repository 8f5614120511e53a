"""Background work that must run exactly once across all workers and nodes."""
