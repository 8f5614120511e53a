"""The base of the errors a service names as AWS does (KMS's, Secrets Manager's): a door of
the AWS JSON protocol renders them mechanically, `code` as the `__type`."""

from __future__ import annotations


class AwsServiceError(Exception):
    """`code` is the error's shape name in botocore's model: the class name unless a class
    says otherwise (a service's base names its internal failure); `client_fault` tells a
    door 4xx from 5xx."""

    code = "InternalFailure"
    client_fault = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = cls.__name__

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
