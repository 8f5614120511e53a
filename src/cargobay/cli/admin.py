"""`cargobay admin`: IAM users, access keys and policies, and per-account settings."""

from __future__ import annotations

from pathlib import Path

import click

from cargobay.cli.common import _emit, _fail, _settings, _with_database
from cargobay.config import Settings


def _run(coro_factory, settings: Settings):
    """Run one admin operation (`coro_factory(users)`) against the deployment's database."""
    from cargobay.iam.credentials import CredentialStore
    from cargobay.iam.users import UserService

    return _with_database(
        settings, lambda db, box: coro_factory(UserService(db, CredentialStore(db, box)))
    )


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--database", default=None, help="Metadata database URL.")
@click.option("--config", type=click.Path(path_type=Path), default=None)
@click.option("--account-id", default=None, help="The account (default: the registry's).")
@click.pass_context
def admin(ctx: click.Context, **options: object) -> None:
    """Manage IAM users, access keys and policies."""
    ctx.obj = _settings(**options)


def _admin_command(fn):
    return admin.command(fn.__name__.replace("_", "-"))(click.pass_obj(fn))


@_admin_command
@click.argument("name")
@click.option("--admin", "is_admin", is_flag=True, help="Give the user every permission.")
def create_user(settings: Settings, name: str, is_admin: bool) -> None:
    """Create an IAM user (prints it as `aws iam create-user` does)."""
    from cargobay.iam.credentials import UserExists

    try:
        user = _run(
            lambda users: users.create(settings.account_id, name, is_admin=is_admin), settings
        )
    except UserExists as exc:
        _fail(exc)
    _emit({"User": user.shape()})


@_admin_command
@click.argument("name")
def create_access_key(settings: Settings, name: str) -> None:
    """Create an access key; the secret is shown only this once."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _emit(_run(lambda users: users.create_access_key(settings.account_id, name), settings))
    except UserNotFound as exc:
        _fail(exc)


@_admin_command
@click.argument("name")
@click.argument("policy_name")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def put_user_policy(settings: Settings, name: str, policy_name: str, policy_file: Path) -> None:
    """Attach an inline identity policy (IAM JSON) to a user."""
    from cargobay.iam.credentials import UserNotFound
    from cargobay.iam.policy import PolicyError

    document = policy_file.read_text()
    try:
        _run(
            lambda users: users.put_policy(settings.account_id, name, policy_name, document),
            settings,
        )
    except (UserNotFound, PolicyError) as exc:
        _fail(exc)


@_admin_command
def list_users(settings: Settings) -> None:
    """List the account's users."""
    users = _run(lambda users: users.list(settings.account_id), settings)
    _emit({"Users": [u.shape() for u in users]})


@_admin_command
@click.argument("name")
@click.argument("access_key_id")
def delete_access_key(settings: Settings, name: str, access_key_id: str) -> None:
    """Delete one of a user's access keys."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _run(
            lambda users: users.delete_access_key(settings.account_id, name, access_key_id),
            settings,
        )
    except UserNotFound as exc:
        _fail(exc)


@_admin_command
@click.argument("name")
def delete_user(settings: Settings, name: str) -> None:
    """Delete a user with its access keys and policies."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _run(lambda users: users.delete(settings.account_id, name), settings)
    except UserNotFound as exc:
        _fail(exc)


@_admin_command
@click.argument("value", type=click.Choice(["on", "off", "default"]))
def set_create_on_push(settings: Settings, value: str) -> None:
    """Whether pushes create missing repositories in this account (`default`: the
    deployment's create_on_push setting). ECR itself never does: `off` gives NAME_UNKNOWN."""
    from cargobay.iam.authz import Authorizer
    from cargobay.registry.repositories import RepositoryService

    choice = {"on": True, "off": False, "default": None}[value]

    async def work(users):
        repositories = RepositoryService(users.db, settings, Authorizer(users.db))
        await repositories.set_create_on_push(settings.account_id, choice)

    _run(work, settings)
