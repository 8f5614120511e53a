"""AWS-style request checking shared by every AWS door (ECR, IAM, and later KMS, Secrets
Manager, CloudTrail, Signer): input shapes from botocore's models, as compact tables."""
