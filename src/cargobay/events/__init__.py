"""Events: EventBridge-shaped envelopes, EventBridge pattern matching, and a transactional outbox
that delivers them to webhooks exactly once per delivery across workers and nodes."""
