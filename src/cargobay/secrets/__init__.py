"""Secrets Manager: the business rules of the secretsmanager API (no HTTP), used for the
pull-through cache's upstream credentials. `service.SecretsService` is the entry point."""
