"""One IAM API call: its parameters, who is asking, and the authorization every action needs.

Authorization is checked by the dispatcher, from `iam.permissions.IAM_OPERATIONS`, before the
action runs, by the same `Authorizer.decide` as every other door. The caller's account is the
account managed. An account administrator (`Principal.is_admin`, as `cargobay admin create-user
--admin` makes) may call every action, as the account root may in AWS. Any other user needs an
identity policy that allows `iam:<Action>` on the user it names,
`arn:aws:iam::<account>:user/<name>` (ListUsers: `...:user/`): explicit Deny wins, conditions
such as `aws:SourceIp`, `aws:PrincipalTag/*`, `aws:ResourceTag/*` (the target user's tags),
`aws:RequestTag/*` and `aws:TagKeys` work.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web

from cargobay.iam import permissions
from cargobay.iam.authz import UserResource
from cargobay.iam.permissions import Permission
from cargobay.iam.principal import Principal
from cargobay.iam.users import UserService
from cargobay.iamapi import errors
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

T = TypeVar("T")
Result = dict[str, Any] | None
Action = Callable[["IamCall"], Awaitable[Result]]
ACTIONS: dict[str, Action] = {}

USER_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
ACCESS_KEY_ID = re.compile(r"[\w]+", re.ASCII)
PATH_PREFIX = re.compile(r"/[\u0021-\u007f]*")
MARKER = re.compile(r"[\u0020-\u00ff]+")
POLICY_DOCUMENT = re.compile(r"[\u0009\u000a\u000d\u0020-\u00ff]+")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def _camel(name: str) -> str:
    """`UserName` -> `userName`, as IAM names members in validation messages."""
    return name[:1].lower() + name[1:]


def _invalid(value: object, name: str, constraint: str) -> errors.IamError:
    shown = "null" if value is None else f"'{value}'"
    return errors.validation(
        f"1 validation error detected: Value {shown} at '{_camel(name)}' failed to satisfy "
        f"constraint: {constraint}"
    )


def tag_text_ok(text: str) -> bool:
    """IAM's tag pattern `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`."""
    return all(c in _TAG_PUNCTUATION or unicodedata.category(c)[0] in "LZN" for c in text)


class Params:
    """The form parameters of one call (`Name=value`, lists as `Name.member.N[.Field]`)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        min_len: int = 1,
        max_len: int | None = None,
    ) -> str | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise _invalid(None, name, "Member must not be null")
            return None
        if len(value) < min_len:
            raise _invalid(
                value, name, f"Member must have length greater than or equal to {min_len}"
            )
        if max_len is not None and len(value) > max_len:
            raise _invalid(value, name, f"Member must have length less than or equal to {max_len}")
        if pattern is not None and not pattern.fullmatch(value):
            raise _invalid(
                value, name, f"Member must satisfy regular expression pattern: {pattern.pattern}"
            )
        return value

    def required(self, name: str, **checks: Any) -> str:
        value = self.string(name, required=True, **checks)
        assert value is not None
        return value

    def user_name(self, name: str = "UserName", *, required: bool = True) -> str | None:
        return self.string(name, required=required, pattern=USER_NAME, max_len=128)

    def integer(self, name: str, low: int, high: int) -> int | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise _invalid(raw, name, "Member must be an integer") from None
        if value < low:
            raise _invalid(raw, name, f"Member must have value greater than or equal to {low}")
        if value > high:
            raise _invalid(raw, name, f"Member must have value less than or equal to {high}")
        return value

    def _indexed(self, name: str) -> dict[int, str]:
        """`Name.member.N...` keys by N; what follows N is kept (`.Key`, `.Value` or empty)."""
        prefix = f"{name}.member."
        found: dict[int, str] = {}
        for key in self.values:
            if key.startswith(prefix):
                index, _, rest = key[len(prefix) :].partition(".")
                # ASCII digits only (`str.isdigit` takes `²`) and short (int() limits digits).
                if not (index.isascii() and index.isdigit() and len(index) <= 5) or int(index) < 1:
                    raise errors.validation(f"Invalid list member '{key}'")
                found.setdefault(int(index), rest)
        return found

    def members(self, name: str, *, required: bool = False) -> list[str]:
        indices = sorted(self._indexed(name))
        if not indices and required:
            raise _invalid(None, name, "Member must not be null")
        return [self.values.get(f"{name}.member.{i}", "") for i in indices]

    def tags(self, name: str = "Tags", *, required: bool = False) -> dict[str, str]:
        """A tag list, validated as IAM does (at most 50, keys unique case-insensitively)."""
        indices = sorted(self._indexed(name))
        if not indices:
            if required:
                raise _invalid(None, name, "Member must not be null")
            return {}
        if len(indices) > 50:
            raise _invalid(
                f"[{len(indices)} tags]", name, "Member must have length less than or equal to 50"
            )
        tags: dict[str, str] = {}
        seen: set[str] = set()
        for i in indices:
            key = self.values.get(f"{name}.member.{i}.Key")
            value = self.values.get(f"{name}.member.{i}.Value")
            where = f"{name}.{i}.member"
            if key is None:
                raise _invalid(None, f"{where}.key", "Member must not be null")
            if value is None:
                raise _invalid(None, f"{where}.value", "Member must not be null")
            if not 1 <= len(key) <= 128 or not tag_text_ok(key):
                raise _invalid(
                    key,
                    f"{where}.key",
                    "Member must have length between 1 and 128 and satisfy regular expression "
                    "pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
                )
            if len(value) > 256 or not tag_text_ok(value):
                raise _invalid(
                    value,
                    f"{where}.value",
                    "Member must have length less than or equal to 256 and satisfy regular "
                    "expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
                )
            if key.lower() in seen:
                raise errors.invalid_input(
                    "Duplicate tag keys found. Please note that Tag keys are case insensitive."
                )
            seen.add(key.lower())
            tags[key] = value
        return tags


def _encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_marker(marker: str) -> str:
    """A marker we issued, or InvalidInput: the lenient decoder drops characters outside the
    alphabet, so `!!!` used to decode to "" and silently restart the listing."""
    try:
        key = base64.b64decode(marker.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        key = ""
    if not key or _encode_marker(key) != marker:
        raise errors.invalid_input("Invalid Marker.")
    return key


def page(
    params: Params, items: Iterable[T], key: Callable[[T], str]
) -> tuple[list[T], dict[str, Any]]:
    """One page of `items` after `Marker` (items sorted by `key`), at most `MaxItems` (default
    100); the result members `IsTruncated` and, when truncated, `Marker`."""
    limit = params.integer("MaxItems", 1, 1000) or 100
    marker = params.string("Marker", pattern=MARKER, max_len=320)
    ordered = sorted(items, key=key)
    if marker is not None:
        after = _decode_marker(marker)
        ordered = [item for item in ordered if key(item) > after]
    chosen = ordered[:limit]
    truncated = len(ordered) > limit
    extra: dict[str, Any] = {"IsTruncated": truncated}
    if truncated:
        extra["Marker"] = _encode_marker(key(chosen[-1]))
    return chosen, extra


class IamCall:
    def __init__(
        self,
        request: web.Request,
        services: Services,
        principal: Principal,
        action: str,
        params: Params,
    ) -> None:
        self.request = request
        self.services = services
        self.principal = principal
        self.action = action
        self.params = params
        self.account_id = principal.account_id
        self.users = UserService(services.db, services.credentials)

    def user_arn(self, name: str | None) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{name or ''}"

    def target_user(self, *, required: bool = True) -> str:
        """The `UserName` parameter; when optional and absent, the caller itself (as IAM
        does for GetUser and the access-key actions)."""
        name = self.params.user_name(required=required)
        return name if name is not None else self.principal.user_name

    async def authorize(self, permission: Permission) -> None:
        """Check the operation's entry in the authorization table on the user the call names
        (None: the account's users), with its request tags as condition keys, before the
        action runs; AccessDenied otherwise. The one authorizer every door uses decides."""
        user_name: str | None = None
        if permission.resource == permissions.USER:
            user_name = self.target_user()
        elif permission.resource == permissions.USER_OR_SELF:
            user_name = self.target_user(required=False)
        context = request_context(self.request, self.services.settings.trusted_proxies)
        extra: dict[str, Any] = {}
        if permission.tags == "Tags" and (tags := self.params.tags()):
            extra = tag_context(tags)
        elif permission.tags == "TagKeys":
            extra = tag_context({}, self.params.members("TagKeys"))
        if extra:
            context = replace(context, extra={**context.extra, **extra})
        for action in permission.actions:
            await self.services.authorizer.require(
                self.principal, action, UserResource(self.account_id, user_name), context
            )


def tag_context(tags: dict[str, str], keys: Iterable[str] = ()) -> dict[str, Any]:
    """`aws:RequestTag/<k>` and `aws:TagKeys` for a call that adds or removes tags."""
    context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    context["aws:TagKeys"] = [*tags, *keys]
    return context
