"""The IAM actions: users, access keys, inline user policies and user tags, each the same
operation `cargobay admin` performs, answered in the shapes of IAM's service model."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cargobay.iam.policy import PolicyError
from cargobay.iam.users import User
from cargobay.iamapi import errors
from cargobay.iamapi.context import (
    ACCESS_KEY_ID,
    PATH_PREFIX,
    POLICY_DOCUMENT,
    USER_NAME,
    IamCall,
    Result,
    action,
    page,
)

ACCESS_KEYS_PER_USER = 2
TAGS_PER_USER = 50


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _user(user: User, tags: dict[str, str] | None = None) -> dict[str, Any]:
    shape: dict[str, Any] = dict(user.shape())
    if tags:
        shape["Tags"] = _tag_list(tags)
    return shape


def _policy_name(call: IamCall) -> str:
    return call.params.required("PolicyName", pattern=USER_NAME, max_len=128)


def _access_key_id(call: IamCall) -> str:
    return call.params.required("AccessKeyId", pattern=ACCESS_KEY_ID, min_len=16, max_len=128)


# -- users ---------------------------------------------------------------------------------------


@action("CreateUser")
async def create_user(call: IamCall) -> Result:
    params = call.params
    name = params.required("UserName", pattern=USER_NAME, max_len=64)
    path = params.string("Path", max_len=512)
    if path is not None and path != "/":
        raise errors.validation(f"Path '{path}' is not supported: cargobay users have path '/'")
    if params.string("PermissionsBoundary") is not None:
        raise errors.validation("PermissionsBoundary is not supported by cargobay")
    tags = params.tags()
    user = await call.users.create(call.account_id, name, tags=tags or None)
    return {"User": _user(user, tags)}


@action("GetUser")
async def get_user(call: IamCall) -> Result:
    name = call.target_user(required=False)
    user = await call.users.get(call.account_id, name)
    return {"User": _user(user, await call.users.tags(call.account_id, name))}


@action("ListUsers")
async def list_users(call: IamCall) -> Result:
    prefix = call.params.string("PathPrefix", pattern=PATH_PREFIX, max_len=512)
    users = await call.users.list(call.account_id)
    if prefix is not None and not "/".startswith(prefix):
        users = []  # every cargobay user has the path "/"
    chosen, extra = page(call.params, users, lambda u: u.name)
    return {"Users": [_user(u) for u in chosen], **extra}


@action("DeleteUser")
async def delete_user(call: IamCall) -> Result:
    name = call.target_user()
    await call.users.delete(call.account_id, name, cascade=False)
    return None


# -- access keys ---------------------------------------------------------------------------------


@action("CreateAccessKey")
async def create_access_key(call: IamCall) -> Result:
    name = call.target_user(required=False)
    return await call.users.create_access_key(call.account_id, name, limit=ACCESS_KEYS_PER_USER)


@action("ListAccessKeys")
async def list_access_keys(call: IamCall) -> Result:
    name = call.target_user(required=False)
    keys = await call.users.list_access_keys(call.account_id, name)
    chosen, extra = page(call.params, keys, lambda k: str(k["AccessKeyId"]))
    return {"AccessKeyMetadata": chosen, **extra}


@action("DeleteAccessKey")
async def delete_access_key(call: IamCall) -> Result:
    name = call.target_user(required=False)
    key_id = _access_key_id(call)
    await call.users.delete_access_key(call.account_id, name, key_id)
    return None


@action("UpdateAccessKey")
async def update_access_key(call: IamCall) -> Result:
    name = call.target_user(required=False)
    key_id = _access_key_id(call)
    status = call.params.required("Status")
    if status not in ("Active", "Inactive"):
        raise errors.validation(
            f"1 validation error detected: Value '{status}' at 'status' failed to satisfy "
            "constraint: Member must satisfy enum value set: [Active, Inactive]"
        )
    await call.users.set_access_key_status(call.account_id, name, key_id, status)
    return None


# -- inline user policies ------------------------------------------------------------------------


@action("PutUserPolicy")
async def put_user_policy(call: IamCall) -> Result:
    name = call.target_user()
    policy_name = _policy_name(call)
    document = call.params.required("PolicyDocument", pattern=POLICY_DOCUMENT, max_len=131072)
    try:
        await call.users.put_policy(call.account_id, name, policy_name, document)
    except PolicyError as exc:
        raise errors.malformed_policy(str(exc)) from None
    return None


@action("GetUserPolicy")
async def get_user_policy(call: IamCall) -> Result:
    name = call.target_user()
    policy_name = _policy_name(call)
    document = await call.users.get_policy(call.account_id, name, policy_name)
    return {
        "UserName": name,
        "PolicyName": policy_name,
        # IAM returns the document URL-encoded (RFC 3986); botocore decodes it.
        "PolicyDocument": quote(document, safe="-_.~"),
    }


@action("ListUserPolicies")
async def list_user_policies(call: IamCall) -> Result:
    name = call.target_user()
    names = await call.users.list_policies(call.account_id, name)
    chosen, extra = page(call.params, names, lambda n: n)
    return {"PolicyNames": chosen, **extra}


@action("DeleteUserPolicy")
async def delete_user_policy(call: IamCall) -> Result:
    name = call.target_user()
    policy_name = _policy_name(call)
    await call.users.delete_policy(call.account_id, name, policy_name)
    return None


# -- user tags -----------------------------------------------------------------------------------


@action("TagUser")
async def tag_user(call: IamCall) -> Result:
    name = call.target_user()
    tags = call.params.tags(required=True)
    await call.users.update_tags(call.account_id, name, tags, limit=TAGS_PER_USER)
    return None


@action("UntagUser")
async def untag_user(call: IamCall) -> Result:
    name = call.target_user()
    keys = call.params.members("TagKeys", required=True)
    if len(keys) > 50:
        raise errors.validation(
            "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: "
            "Member must have length less than or equal to 50"
        )
    await call.users.update_tags(call.account_id, name, remove=keys, limit=TAGS_PER_USER)
    return None


@action("ListUserTags")
async def list_user_tags(call: IamCall) -> Result:
    name = call.target_user()
    tags = await call.users.tags(call.account_id, name)
    chosen, extra = page(call.params, tags.items(), lambda kv: kv[0])
    return {"Tags": _tag_list(dict(chosen)), **extra}
