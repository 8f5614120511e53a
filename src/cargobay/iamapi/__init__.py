"""The IAM Query API subset `aws iam --endpoint-url` and boto3's `iam` client speak."""
