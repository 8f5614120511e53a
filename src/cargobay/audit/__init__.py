"""The audit trail: one CloudTrail-shaped record per API call (who, from where, what, with
which parameters, and the outcome), stored in the metadata database, queried per account with
CloudTrail's LookupEvents semantics and exported as JSON lines."""
