"""Registry metadata in a SQL database (SQLite embedded, PostgreSQL for many nodes)."""
