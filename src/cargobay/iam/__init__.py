"""Identity and access: principals, access keys, credential checks and authorization."""
