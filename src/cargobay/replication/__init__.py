"""Replication of pushed images to other regions and accounts, as ECR does it.

`config` parses and validates a registry's replication configuration (ECR's rules and quotas);
`regions` knows where other regions' deployments live; `remote` pushes one image to another
deployment over `/v2/`; the job that drains the outbox lives beside them.
"""
