"""The Secrets Manager door: AWS JSON 1.1 with `X-Amz-Target: secretsmanager.<Op>`."""
