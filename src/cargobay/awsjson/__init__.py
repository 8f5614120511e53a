"""The AWS JSON 1.1 protocol, once, for every service cargobay answers that speaks it
(KMS, Secrets Manager, CloudTrail, ...): a door is this protocol plus one service table."""

from cargobay.awsjson.door import AwsError, JsonCall, JsonService, Operation, find, serve

__all__ = ["AwsError", "JsonCall", "JsonService", "Operation", "find", "serve"]
