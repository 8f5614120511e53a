"""Registry services: the business rules both front doors share."""
