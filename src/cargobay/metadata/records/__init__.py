"""The record layer: the SQL of the registry's core entities, one module per entity.

Services (`registry/`) own every rule and open every transaction; the functions here take the
connection (`metadata.conn.Conn`) the service opened, run their statements on it and return
plain rows. They know nothing of HTTP, authorization, encryption or domain errors, and they
are the same on SQLite and PostgreSQL (`tests/metadata/` runs them on both).
"""
