"""One ECR API call: who is asking, for which registry, and the helpers every action uses."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cargobay import regions
from cargobay.ecr import describing, errors
from cargobay.errors import NameInvalid
from cargobay.iam import authz, permissions
from cargobay.iam.permissions import Permission
from cargobay.iam.principal import Principal
from cargobay.oci.names import validate_name
from cargobay.registry import ecrreads
from cargobay.registry.ecrreads import EcrRead, ListQuery
from cargobay.registry.repositories import Repository
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

_REGISTRY_ID = re.compile(r"^[0-9]{12}$")
# host[:port] as a Host header may carry it: a DNS name, IPv4, or a bracketed IPv6 address.
_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
_ARN = re.compile(r"^arn:aws[a-z-]*:ecr:([a-z0-9-]+):([0-9]{12}):repository/(.+)$")
# The origin (`EcrCall.base_url`) of each (scheme, Host) pair seen, at most _MAX_ORIGINS.
_ORIGINS: dict[tuple[str, str], str] = {}
_MAX_ORIGINS = 256


def token_text(value: Any) -> bool:
    """A token that is one key: a short string of valid Unicode."""
    return isinstance(value, str) and len(value) <= 1024 and not _SURROGATE.search(value)


def token_texts(value: Any, count: int) -> bool:
    """A token that is a list of `count` keys."""
    return isinstance(value, list) and len(value) == count and all(map(token_text, value))


_SURROGATE = re.compile("[\ud800-\udfff]")

# Operations on one repository whose authorization reads the repository with its policies in
# one statement (`registry.ecrreads`), with what the operation reads when it is a read.
ONE_STATEMENT = frozenset(
    {
        "BatchGetImage",
        "GetDownloadUrlForLayer",
        "BatchCheckLayerAvailability",
        "DescribeImages",
        "ListImages",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "PutImage",
    }
)
# The most names of one kind a batch lists (BatchGetImage, BatchCheckLayerAvailability).
_BATCH = 100


def _distinct_texts(values: list[Any]) -> list[str]:
    return sorted({v for v in values if isinstance(v, str) and v})


def _reads(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the operation's statement reads beside the repository (`ecrreads.read`'s keywords),
    from a payload the action checks again: anything unexpected reads the repository alone."""
    if operation == "GetDownloadUrlForLayer":
        digest = payload.get("layerDigest")
        return {"layer": digest} if isinstance(digest, str) and digest else {}
    if operation == "BatchCheckLayerAvailability":
        digests = payload.get("layerDigests")
        if isinstance(digests, list) and 1 <= len(digests) <= _BATCH:
            return {"layers": _distinct_texts(digests)}
        return {}
    if operation == "BatchGetImage":
        ids = payload.get("imageIds")
        if not isinstance(ids, list) or not 1 <= len(ids) <= _BATCH:
            return {}
        if not all(isinstance(i, dict) for i in ids):
            return {}
        tags = [i.get("imageTag") for i in ids]
        digests = [i.get("imageDigest") for i in ids if not i.get("imageTag")]
        return {"tags": _distinct_texts(tags), "digests": _distinct_texts(digests)}
    if operation == "DescribeImages":
        by_id = payload.get("imageIds") is not None
        try:
            limit = 0 if by_id else EcrCall.page_size(payload)
            after = None if by_id else EcrCall.decode_token(payload, token_text)
            query = describing.query(payload, limit, after)
        except errors.EcrError:  # the action answers it
            return {}
        return {"describe": query} if query is not None else {}
    if operation == "ListImages":
        try:
            limit = EcrCall.page_size(payload)
            after = EcrCall.decode_token(payload, lambda v: token_texts(v, 2))
            tag_status = describing.tag_status(payload)
            image_status = describing.image_status(payload)
        except errors.EcrError:  # the action answers it
            return {}
        cursor = (after[0], after[1]) if after else None
        return {"listing": ListQuery(tag_status, image_status, cursor, limit + 1)}
    return {}


class EcrCall:
    def __init__(
        self,
        request: web.Request,
        services: Services,
        principal: Principal,
        action: str,
        confirm: str | None = None,
    ) -> None:
        self.request = request
        self.services = services
        self.principal = principal
        self.action = action
        self.settings = services.settings
        self.region = regions.current(services.settings.region)  # the request's (SigV4 scope)
        self.registry_id = principal.account_id
        self.repository_name = ""
        # The repository, its policies and the operation's rows, when one statement read them
        # for the authorization (`ONE_STATEMENT`); None otherwise.
        self.read: EcrRead | None = None
        # The verifier of the remembered key row the caller was verified with, until the
        # call's statement confirms it (`ecr.caller`); None once confirmed, or never needed.
        self.confirm = confirm
        self._context: authz.RequestContext | None = None
        self._resource: authz.Resource | None = None  # the last `resource_for`

    # -- identity and naming -----------------------------------------------------------------

    def use_registry(self, payload: dict[str, Any]) -> str:
        registry_id = payload.get("registryId")
        if registry_id is not None:
            if not isinstance(registry_id, str) or not _REGISTRY_ID.fullmatch(registry_id):
                raise errors.InvalidParameter(
                    "Invalid parameter at 'registryId' failed to satisfy constraint: "
                    "'must satisfy regular expression pattern: [0-9]{12}'"
                )
            self.registry_id = registry_id
        return self.registry_id

    def repository_arn(self, name: str, registry_id: str | None = None) -> str:
        return f"arn:aws:ecr:{self.region}:{registry_id or self.registry_id}:repository/{name}"

    def registry_host(self, registry_id: str | None = None) -> str:
        """The host a client pulls this registry from: the ECR form when `host_suffix` is set
        (a wildcard DNS record makes it resolve); otherwise, for the caller's own registry,
        the address the caller used, which docker and skopeo can reach as they are. Another
        account's registry has no such address without a suffix: its ECR form is answered."""
        registry = registry_id or self.registry_id
        if not self.settings.host_suffix and registry == self.principal.account_id:
            host = (self.request.host or "").lower()
            if _HOST.fullmatch(host):
                return host
        suffix = self.settings.host_suffix or f"localhost:{self.settings.port}"
        return f"{registry}.dkr.ecr.{self.region}.{suffix}"

    def repository_uri(self, name: str) -> str:
        return f"{self.registry_host()}/{name}"

    def base_url(self) -> str:
        """This server as the caller reached it (scheme, host and port): the request URL's
        origin, which depends on the scheme and the Host header alone, so each pair's is
        built once (building the URL was a tenth of GetDownloadUrlForLayer's action)."""
        request = self.request
        key = (request.scheme, request.host)
        origin = _ORIGINS.get(key)
        if origin is None:
            if len(_ORIGINS) >= _MAX_ORIGINS:  # Host headers are the clients' to choose
                _ORIGINS.clear()
            origin = _ORIGINS[key] = str(request.url.origin())
        return origin

    @property
    def gathered_context(self) -> authz.RequestContext | None:
        """The request's facts if `context` gathered them (the audit record reuses them)."""
        return self._context

    def context(self) -> authz.RequestContext:
        """The request's facts for policy conditions, gathered once per call."""
        if self._context is None:
            self._context = request_context(self.request, self.settings.trusted_proxies)
        return self._context

    def resource_for(self, name: str | None) -> authz.Resource:
        resource = self._resource
        if resource is None or resource.name != name or resource.account_id != self.registry_id:
            resource = self._resource = authz.Resource(self.registry_id, self.region, name)
        return resource

    async def require(
        self, action: str, name: str | None = None, loaded: authz.LoadedPolicies | None = None
    ) -> None:
        """A check beyond the authorization table's (the dispatcher has done that one)."""
        resource = self.resource_for(name)
        await self.services.authorizer.require(
            self.principal, action, resource, self.context(), loaded
        )

    # -- parameters --------------------------------------------------------------------------

    def name_param(self, payload: dict[str, Any], key: str = "repositoryName") -> str:
        name = payload.get(key)
        if not isinstance(name, str) or not name:
            raise errors.InvalidParameter(f"{key} is required")
        if len(name) < 2 or len(name) > 256:
            raise errors.InvalidParameter(
                f"Invalid parameter at '{key}' failed to satisfy constraint: "
                "'Member must have length between 2 and 256'"
            )
        try:
            validate_name(name)
        except NameInvalid:
            raise errors.InvalidParameter(
                f"Invalid parameter at '{key}' failed to satisfy constraint: 'must satisfy "
                "regular expression pattern: (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+"
                "(?:[._-][a-z0-9]+)*'"
            ) from None
        self.repository_name = name
        return name

    async def repository(self, payload: dict[str, Any]) -> Repository:
        """The repository named in the payload (the dispatcher has authorized the call on it
        already; RepositoryNotFound when it does not exist)."""
        self.use_registry(payload)
        name = payload.get("repositoryName")
        if not name or name != self.repository_name:  # not the name `authorize` checked
            name = self.name_param(payload)
        read = self.read
        if read is not None and read.policies.resource == self.resource_for(name):
            return read.repository
        return await self.services.repositories.get(self.registry_id, name)

    def arn_repository(self, payload: dict[str, Any]) -> dict[str, str]:
        """`resourceArn` as the `registryId` and `repositoryName` it names."""
        arn = payload.get("resourceArn")
        match = _ARN.fullmatch(arn) if isinstance(arn, str) else None
        if not match:
            raise errors.InvalidParameter(
                "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"
            )
        region, registry_id, name = match.groups()
        if region != self.region:
            raise errors.InvalidParameter(f"resourceArn names region {region}, not {self.region}")
        return {"registryId": registry_id, "repositoryName": name}

    async def authorize(self, permission: Permission, payload: dict[str, Any]) -> None:
        """Check the operation's entry in the authorization table on the resource the payload
        names, before the action runs."""
        kind = permission.resource
        names: list[str | None] = [None]
        if kind == permissions.REPOSITORY_ARN:
            payload = self.arn_repository(payload)
            kind = permissions.REPOSITORY
        self.use_registry(payload)
        loaded = None
        if kind == permissions.REPOSITORY:
            names = [self.name_param(payload)]
            if self.action in ONE_STATEMENT and permission.resource == permissions.REPOSITORY:
                self.read = await ecrreads.read(
                    self.services.db,
                    self.resource_for(names[0]),
                    self.principal,
                    **_reads(self.action, payload),
                    confirm=self.confirm,
                )
                self.confirm = None  # the statement confirmed the caller's key (or raised)
                loaded = self.read.policies if self.read is not None else None
        elif kind == permissions.REPOSITORIES and payload.get("repositoryNames") is not None:
            listed = payload["repositoryNames"]
            if not isinstance(listed, list) or not 1 <= len(listed) <= 100:
                raise errors.InvalidParameter("repositoryNames must list 1 to 100 names")
            names = [self.name_param({"repositoryName": name}) for name in listed]
        if self.confirm is not None:  # no statement confirmed the caller: never decide for it
            raise ecrreads.CallerUnconfirmed
        for name in names:
            for action in permission.actions:
                await self.require(action, name, loaded)

    @staticmethod
    def page_size(payload: dict[str, Any], maximum: int = 1000, default: int = 100) -> int:
        value = payload.get("maxResults")
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
            raise errors.InvalidParameter(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: "
                f"'Member must have value between 1 and {maximum}'"
            )
        return value

    @staticmethod
    def decode_token(payload: dict[str, Any], accept: Callable[[Any], bool] = bool) -> Any:
        """The value a `nextToken` encodes, if `accept` takes it (tokens come back from
        clients: any other shape is InvalidParameterException, never a 500 later)."""
        token = payload.get("nextToken")
        if token is None:
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, AttributeError, RecursionError):
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'") from None
        if not accept(value):
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
        return value

    @staticmethod
    def encode_token(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
