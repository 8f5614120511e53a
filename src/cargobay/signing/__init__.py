"""Managed signing (issue 18): signing profiles (a subset of AWS Signer's API), the registry's
signing configuration (ECR's PutSigningConfiguration and friends), and the task that signs a
pushed image with a Notary Project JWS signature attached as an OCI referrer.

Layout: `certs` issues a profile's certificate chain, `envelope` builds the JWS, `profiles`
and `configuration` hold the rules, `door` speaks the signer REST protocol, `job` signs."""
