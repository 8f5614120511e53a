"""The Secrets Manager door: its table for the AWS JSON 1.1 dispatcher (`door.SERVICE`)."""
