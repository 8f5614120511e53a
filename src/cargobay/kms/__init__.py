"""Key management (the KMS API's business rules): keys, aliases, policies, rotation, deletion
and the cryptographic operations, with key material sealed in the metadata database.

No HTTP here: `KmsService` raises the exceptions of `kms.errors`, each carrying the AWS error
name a door returns."""
