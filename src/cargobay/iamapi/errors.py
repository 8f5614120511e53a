"""IAM's error codes, each with the HTTP status IAM answers it with.

Rendered as `<ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message>
</Error><RequestId>..</RequestId></ErrorResponse>` (see xml.py).
"""

from __future__ import annotations

from cargobay import errors as e


class IamError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


def no_such_entity(message: str) -> IamError:
    return IamError("NoSuchEntity", message, 404)


def entity_already_exists(message: str) -> IamError:
    return IamError("EntityAlreadyExists", message, 409)


def delete_conflict(message: str) -> IamError:
    return IamError("DeleteConflict", message, 409)


def limit_exceeded(message: str) -> IamError:
    return IamError("LimitExceeded", message, 409)


def malformed_policy(message: str) -> IamError:
    return IamError("MalformedPolicyDocument", message, 400)


def invalid_input(message: str) -> IamError:
    return IamError("InvalidInput", message, 400)


def validation(message: str) -> IamError:
    return IamError("ValidationError", message, 400)


def access_denied(message: str) -> IamError:
    return IamError("AccessDenied", message, 403)


def invalid_action(message: str) -> IamError:
    return IamError("InvalidAction", message, 400)


def missing_action(message: str) -> IamError:
    return IamError("MissingAction", message, 400)


def service_failure(message: str) -> IamError:
    return IamError("ServiceFailure", message, 500)


# Domain errors by kind: IAM's error vocabulary is coarse, so the first class in an error's
# MRO found here decides (a test proves every domain error resolves to an entry).
IAM_ERRORS: dict[type[e.DomainError], tuple[str, int]] = {
    e.NotFound: ("NoSuchEntity", 404),
    e.AlreadyExists: ("EntityAlreadyExists", 409),
    e.DeleteConflict: ("DeleteConflict", 409),
    e.Conflict: ("DeleteConflict", 409),
    e.InvalidParameter: ("InvalidInput", 400),
    e.LimitExceeded: ("LimitExceeded", 409),
    e.AccessDenied: ("AccessDenied", 403),
    e.Unauthenticated: ("InvalidClientTokenId", 403),
    e.TooManyRequests: ("Throttling", 400),
    e.Unsupported: ("InvalidInput", 400),
}


def iam_entry(error_type: type[e.DomainError]) -> tuple[str, int] | None:
    for cls in error_type.__mro__:
        if cls in IAM_ERRORS:
            return IAM_ERRORS[cls]
    return None


def from_domain(error: e.DomainError) -> IamError:
    entry = iam_entry(type(error))
    if entry is None:
        return service_failure("internal error")
    return IamError(entry[0], error.message, entry[1])
