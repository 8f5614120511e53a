"""The shape of the code: services under thin doors.

- every domain error has an answer at every door (an unmapped error is a failure here, not a
  500 in production);
- every route and operation of every door has an entry in the authorization table, and the
  handlers do not hand-place the checks the table makes;
- the import rules: doors import services, never `metadata/` or `storage/`; services never
  import a door.
"""

from __future__ import annotations

import ast
from pathlib import Path

import botocore.session
import pytest

from cargobay import errors
from cargobay.distribution import routes
from cargobay.distribution.errors import OCI_ERRORS, oci_error
from cargobay.ecr import actions as _ecr_actions  # noqa: F401  (registers the actions)
from cargobay.ecr.api import ACTIONS as ECR_ACTIONS
from cargobay.ecr.errors import ECR_ERRORS, from_domain
from cargobay.iam import permissions
from cargobay.iamapi import api as _iam_api  # noqa: F401  (registers the actions)
from cargobay.iamapi.context import ACTIONS as IAM_ACTIONS
from cargobay.iamapi.errors import iam_entry

SRC = Path(__file__).resolve().parents[2] / "src" / "cargobay"
DOMAIN_ERRORS = errors.concrete_errors()
# Errors every AWS JSON service may answer, beyond those the ECR model lists.
AWS_COMMON = {"AccessDeniedException", "ThrottlingException", "UnrecognizedClientException"}


def test_the_domain_errors_are_enumerated() -> None:
    names = {cls.__name__ for cls in DOMAIN_ERRORS}
    assert {"RepositoryNotFound", "ImageTagAlreadyExists", "LayersNotFound", "BlobUnknown"} <= names
    for cls in DOMAIN_ERRORS:
        error = cls()
        assert error.message, cls
        assert not hasattr(error, "status") and not hasattr(error, "code"), cls


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda c: c.__name__)
def test_every_door_maps_every_domain_error(cls: type[errors.DomainError]) -> None:
    assert cls in OCI_ERRORS, f"/v2/ has no entry for {cls.__name__}"
    code, status = oci_error(cls())
    # 501 is the one 5xx a client earns (RFC 9112: a transfer coding we do not implement).
    assert code != "UNKNOWN"
    assert status < 500 or (cls is errors.TransferCodingUnsupported and status == 501)
    assert cls in ECR_ERRORS, f"the ECR door has no entry for {cls.__name__}"
    mapped = from_domain(cls("why"))
    assert mapped.status < 500 and mapped.message == "why"
    assert iam_entry(cls) is not None, f"the IAM door has no entry for {cls.__name__}"


def test_the_ecr_table_names_exceptions_the_model_knows() -> None:
    model = botocore.session.get_session().get_service_model("ecr")
    known = {name for name in model.shape_names if name.endswith("Exception")} | AWS_COMMON
    assert set(ECR_ERRORS.values()) <= known


def test_an_unmapped_error_is_a_500_not_a_guess() -> None:
    class Stray(errors.DomainError):
        pass

    assert oci_error(Stray()) == ("UNKNOWN", 500)
    assert from_domain(Stray()).status == 500


# -- the authorization table --------------------------------------------------------------------


def test_every_v2_route_has_permissions() -> None:
    kinds = {kind for _, kind in routes._ROUTES} | {"base", "catalog"}
    assert kinds == set(routes._HANDLERS)
    assert {kind for kind, _ in permissions.V2_ROUTES} == kinds
    for (kind, method), permission in permissions.V2_ROUTES.items():
        assert method in {"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"}
        assert permission.actions or permission.resource == permissions.NONE, (kind, method)
        assert all(a.startswith("ecr:") for a in permission.actions)


# ECR operations without an IAM action of their own (the service authorization reference).
SHARED_ACTIONS = {"ListImageReferrers": "ecr:BatchGetImage"}


def test_every_ecr_and_iam_operation_has_its_own_action() -> None:
    assert set(permissions.ECR_OPERATIONS) == set(ECR_ACTIONS)
    assert set(permissions.IAM_OPERATIONS) == set(IAM_ACTIONS)
    for operation, permission in permissions.ECR_OPERATIONS.items():
        assert permission.actions == (SHARED_ACTIONS.get(operation, f"ecr:{operation}"),)
    for operation, permission in permissions.IAM_OPERATIONS.items():
        assert permission.actions == (f"iam:{operation}",)
    model = botocore.session.get_session().get_service_model("ecr")
    assert set(permissions.ECR_OPERATIONS) <= set(model.operation_names)


def test_every_secrets_manager_operation_has_its_own_action_and_errors_their_type() -> None:
    from cargobay.secrets import errors as secret_errors
    from cargobay.secrets.operations import OPERATIONS
    from cargobay.secretsapi.errors import SECRETS_ERRORS

    assert set(permissions.SECRETS_OPERATIONS) == set(OPERATIONS)
    for operation, permission in permissions.SECRETS_OPERATIONS.items():
        assert permission.actions == (f"secretsmanager:{operation}",)
    model = botocore.session.get_session().get_service_model("secretsmanager")
    assert set(OPERATIONS) <= set(model.operation_names)
    pending = [secret_errors.SecretsError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not secret_errors.SecretsError:
            assert cls in SECRETS_ERRORS, cls.__name__
    known = {name for name in model.shape_names} | AWS_COMMON
    assert {code for code, _ in SECRETS_ERRORS.values()} <= known


def test_pulling_through_a_cache_rule_needs_import_and_create() -> None:
    assert permissions.PULL_THROUGH["import"].actions == ("ecr:BatchImportUpstreamImage",)
    assert permissions.PULL_THROUGH["create"].actions == ("ecr:CreateRepository",)


# The checks the table cannot make (they depend on more than the route), by file.
SECONDARY_CHECKS = {
    "distribution/routes.py": 1,  # the dispatcher's own check of the table entry
    "distribution/uploads.py": 2,  # a monolithic POST is also a part and a completion
    "ecr/actions/repositories.py": 1,  # tags given to CreateRepository need TagResource
}


def _calls(path: Path, names: set[str]) -> int:
    tree = ast.parse(path.read_text())
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    )


def test_handlers_leave_authorization_to_the_dispatcher() -> None:
    handlers = [
        *sorted((SRC / "distribution").glob("*.py")),
        *sorted((SRC / "ecr" / "actions").glob("*.py")),
        SRC / "iamapi" / "actions.py",
    ]
    for path in handlers:
        relative = path.relative_to(SRC).as_posix()
        if relative == "distribution/call.py":
            continue  # defines Call.require
        assert _calls(path, {"require", "authorize"}) == SECONDARY_CHECKS.get(relative, 0), relative


# -- import rules -------------------------------------------------------------------------------

DOORS = ("distribution", "ecr", "iamapi", "secretsapi", "awsjson")
SERVICES = (
    "registry",
    "lifecycle",
    "iam",
    "jobs",
    "pullthrough",
    "secrets",
    "upstream",
    "scans",
    "replication",
)


def _all_imports(path: Path) -> set[str]:
    """Every module a file imports, `from a import b` counted as both `a` and `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _imports(path: Path) -> set[str]:
    """The cargobay modules a file imports (`from a import b`: `a`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("cargobay")}


def _package_files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("door", DOORS)
def test_doors_import_services_never_metadata_or_storage(door: str) -> None:
    for path in _package_files(door):
        for module in _imports(path):
            assert not module.startswith(("cargobay.metadata", "cargobay.storage")), (
                f"{path.relative_to(SRC)} imports {module}"
            )


@pytest.mark.parametrize("package", SERVICES)
def test_services_never_import_a_door(package: str) -> None:
    doors = tuple(f"cargobay.{door}" for door in DOORS)
    for path in _package_files(package):
        for module in _imports(path):
            assert not module.startswith(doors), f"{path.relative_to(SRC)} imports {module}"


def test_errors_and_oci_import_nothing_above_them() -> None:
    assert _imports(SRC / "errors.py") == set()
    for path in _package_files("oci"):
        for module in _imports(path):
            assert module == "cargobay.errors" or module.startswith("cargobay.oci"), path


def test_only_the_authorizer_calls_the_policy_engine() -> None:
    """Every door decides through `Authorizer.decide`, which builds the condition keys once;
    nothing else may evaluate policies itself (iamapi once did, with its own keys). KMS is the
    one documented exception: `KmsAuthorizer` (kms/authz.py) adds the key-policy rule on top of
    the same engine, and PutKeyPolicy's lockout safety check (kms/service.py) asks whether a
    new key policy would still let its caller change it."""
    callers = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "iam" / "policy"):
            continue  # the engine's own modules
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module is not None
                and (node.module + ".").startswith("cargobay.iam.policy.")
                and any(alias.name in ("decide", "AuthRequest") for alias in node.names)
            ):
                callers.append(path.relative_to(SRC).as_posix())
    assert callers == ["iam/authz.py", "kms/authz.py", "kms/service.py"]


def _module_graph() -> dict[str, set[str]]:
    """Module -> the cargobay modules it imports at load time (not inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[module] = {t for t in targets if t.startswith("cargobay")}
    return {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}


def test_no_module_imports_itself_back() -> None:
    """No import cycle (the lifecycle job and the scheduler once needed an `except
    ImportError` to load each other); `schedule` sits above both `jobs` and `lifecycle`."""
    graph = _module_graph()
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            module, trail = stack.pop()
            for target in graph[module]:
                if target == start:
                    cycles.append(trail)
                elif target not in seen and not target.startswith(start + "."):
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert cycles == []
    assert "cargobay.lifecycle.job" in graph["cargobay.schedule"]
    assert not any(m.startswith("cargobay.lifecycle") for m in graph["cargobay.jobs.gc"])


def test_no_dialect_branches_above_the_metadata_layer() -> None:
    """Services and doors say what they want (a row lock, names in order); `metadata/` decides
    how each backend does it, so the same code is right on SQLite and PostgreSQL."""
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "metadata" not in path.relative_to(SRC).parts
        and ("is_sqlite" in path.read_text() or "dialect.name" in path.read_text())
    ]
    assert offenders == []


# -- the record layer ---------------------------------------------------------------------------

# Services whose SQL lives in `metadata/records/` (the others still build their own; see
# docs/architecture.md).
ON_RECORDS = (
    "registry/repositories.py",
    "registry/manifests.py",
    "registry/push.py",
    "registry/blobs.py",
    "registry/images.py",
    "registry/deletes.py",
    "registry/referrers.py",
    "registry/archive.py",
    "registry/uploads.py",
)


def test_records_know_nothing_above_the_metadata_layer() -> None:
    """Records run SQL on the caller's connection and return rows: no domain errors, no
    services, no doors."""
    for path in _package_files("metadata/records"):
        for module in _imports(path):
            assert module.startswith("cargobay.metadata"), (
                f"{path.relative_to(SRC)} imports {module}"
            )


@pytest.mark.parametrize("relative", ON_RECORDS)
def test_the_core_services_leave_sql_to_the_records(relative: str) -> None:
    for module in _all_imports(SRC / relative):
        assert not module.startswith("sqlalchemy"), f"{relative} imports {module}"
        assert module not in ("cargobay.metadata.schema", "cargobay.metadata.sql"), relative
