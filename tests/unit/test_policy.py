"""Unit tests for the IAM policy language (cargobay.iam.policy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cargobay.iam.policy import (
    AuthRequest,
    Policy,
    PolicyError,
    decide,
    parse_policy,
    statement_effect,
)
from cargobay.iam.principal import Principal

ACCOUNT = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
REPO = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app"
OTHER_REPO = f"arn:aws:ecr:{REGION}:{OTHER}:repository/team/app"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
BOB = f"arn:aws:iam::{OTHER}:user/bob"
OTHER_ROOT = f"arn:aws:iam::{OTHER}:root"

PULL = "ecr:BatchGetImage"
PUSH = "ecr:PutImage"


def request(
    action: str = PULL,
    *,
    principal: str = ALICE,
    resource: str = REPO,
    **context: Any,
) -> AuthRequest:
    principal_account = principal.split(":")[4] if principal.startswith("arn:") else ""
    resource_account = resource.split(":")[4]
    return AuthRequest(
        principal_arn=principal,
        principal_account=principal_account,
        action=action,
        resource_arn=resource,
        resource_account=resource_account,
        context=context,
    )


def document(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return json.dumps(doc)


def identity(*statements: dict[str, Any], version: str | None = "2012-10-17") -> Policy:
    return parse_policy(document(*statements, version=version))


def resource_policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy(document(*statements), resource_policy=True)


def allow(action: Any = "ecr:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "ecr:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def grant(principal: Any, action: Any = "ecr:*", effect: str = "Allow", **extra: Any):
    return {"Effect": effect, "Principal": principal, "Action": action, **extra}


def effect(policy: Policy, req: AuthRequest, *, as_resource_policy: bool = False) -> str | None:
    return statement_effect(policy, req, as_resource_policy=as_resource_policy)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class TestParse:
    def test_minimal_identity_policy(self) -> None:
        policy = identity(allow(PULL, REPO, Sid="Pull"))
        assert isinstance(policy, Policy)
        assert policy.version == "2012-10-17"
        (st,) = policy.statements
        assert st.sid == "Pull"
        assert st.effect == "Allow"
        assert st.actions == (PULL,)
        assert st.resources == (REPO,)
        assert not st.not_action and not st.not_resource
        assert st.principal is None
        assert st.conditions == ()

    def test_raw_text_is_kept(self) -> None:
        text = document(allow())
        assert parse_policy(text).raw == text

    def test_statement_may_be_a_single_object(self) -> None:
        text = json.dumps({"Version": "2012-10-17", "Statement": allow(PULL, REPO)})
        assert len(parse_policy(text).statements) == 1

    @pytest.mark.parametrize("version", ["2012-10-17", "2008-10-17", None])
    def test_versions(self, version: str | None) -> None:
        assert identity(allow(), version=version).version == version

    def test_id_is_kept(self) -> None:
        text = json.dumps({"Version": "2012-10-17", "Id": "p1", "Statement": [allow()]})
        assert parse_policy(text).id == "p1"

    def test_lists_of_actions_and_resources(self) -> None:
        st = identity(allow([PULL, PUSH], [REPO, OTHER_REPO])).statements[0]
        assert st.actions == (PULL, PUSH)
        assert st.resources == (REPO, OTHER_REPO)

    def test_resource_policy_without_resource(self) -> None:
        policy = resource_policy(grant({"AWS": BOB}, PULL))
        (st,) = policy.statements
        assert st.resources is None
        assert st.principal is not None
        assert st.principal.arns == frozenset({BOB})
        assert policy.resource_policy

    def test_resource_policy_with_resource(self) -> None:
        st = resource_policy(grant("*", PULL, Resource=REPO)).statements[0]
        assert st.resources == (REPO,)

    def test_principal_forms(self) -> None:
        st = resource_policy(
            grant({"AWS": [ACCOUNT, OTHER_ROOT, BOB], "Service": "codebuild.amazonaws.com"})
        ).statements[0]
        assert st.principal is not None
        assert st.principal.accounts == frozenset({ACCOUNT, OTHER})
        assert st.principal.arns == frozenset({BOB})
        assert st.principal.services == frozenset({"codebuild.amazonaws.com"})
        assert not st.principal.everyone
        assert resource_policy(grant("*")).statements[0].principal.everyone  # type: ignore[union-attr]
        everyone = resource_policy(grant({"AWS": "*"})).statements[0].principal
        assert everyone is not None and everyone.everyone

    def test_condition_is_parsed(self) -> None:
        st = identity(
            allow(
                Condition={
                    "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["a*", "b"]},
                    "Bool": {"aws:SecureTransport": True},
                }
            )
        ).statements[0]
        first, second = st.conditions
        assert first.base == "StringLike"
        assert first.qualifier == "ForAnyValue"
        assert first.if_exists
        assert first.key == "aws:TagKeys"
        assert first.values == ("a*", "b")
        assert second.base == "Bool" and second.values == ("true",)
        assert not second.if_exists and second.qualifier is None

    def test_condition_operators_are_case_insensitive(self) -> None:
        st = identity(allow(Condition={"stringequals": {"aws:username": "alice"}})).statements[0]
        assert st.conditions[0].base == "StringEquals"

    def test_policy_error_is_a_value_error(self) -> None:
        assert issubclass(PolicyError, ValueError)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("{not json", "not valid JSON"),
            ("[]", "must be a JSON object"),
            ('"policy"', "must be a JSON object"),
            ('{"Version": "2012-10-17", "Statement": [], "Statement": []}', "duplicate key"),
            ('{"Version": "2012-10-17", "Statement": [{"Effect": NaN}]}', "NaN"),
            ('{"Version": "2012-10-17"}', "must have a Statement"),
            ('{"Version": "2012-10-17", "Statement": []}', "Statement must not be empty"),
            ('{"Version": "2012-10-17", "Statement": "x"}', "Statement must be an object"),
            ('{"Version": "2012-10-18", "Statement": []}', "Version must be one of"),
            ('{"Version": "2012-10-17", "Id": 1, "Statement": []}', "Id must be a string"),
            ('{"Statement": [], "Extra": 1}', "unknown element 'Extra'"),
        ],
    )
    def test_document_errors(self, text: str, message: str) -> None:
        with pytest.raises(PolicyError, match=message):
            parse_policy(text)

    def test_non_string_input(self) -> None:
        with pytest.raises(PolicyError, match="JSON string"):
            parse_policy(b"{}")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("statement", "message"),
        [
            ("x", r"Statement\[1\] must be a JSON object"),
            ({"Effect": "allow", "Action": "*", "Resource": "*"}, "Effect must be Allow or Deny"),
            ({"Action": "*", "Resource": "*"}, r"Statement\[1\]\.Effect must be Allow or Deny"),
            ({"Effect": "Allow", "Resource": "*"}, "exactly one of Action or NotAction"),
            (
                {"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"},
                "exactly one of Action or NotAction",
            ),
            ({"Effect": "Allow", "Action": "ecrBatchGetImage", "Resource": "*"}, "service:Action"),
            ({"Effect": "Allow", "Action": "ecr:", "Resource": "*"}, "service:Action"),
            ({"Effect": "Allow", "Action": [], "Resource": "*"}, "Action must not be empty"),
            ({"Effect": "Allow", "Action": ["ecr:*", 5], "Resource": "*"}, "non-empty string"),
            ({"Effect": "Allow", "Action": "*"}, "exactly one of Resource or NotResource"),
            (
                {"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"},
                "both Resource and NotResource",
            ),
            ({"Effect": "Allow", "Action": "*", "Resource": "team/*"}, "must be '\\*' or an ARN"),
            (
                {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"},
                "must not have a Principal in an identity policy",
            ),
            (
                {"Effect": "Allow", "Action": "*", "Resource": "*", "Actions": "*"},
                "unknown element 'Actions'",
            ),
            ({"Sid": 3, "Effect": "Allow", "Action": "*", "Resource": "*"}, "Sid must be a string"),
            ({"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"}, "'A' is not unique"),
            (
                {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:ecr:::repository/${a, b}"},
                "invalid policy variable",
            ),
        ],
    )
    def test_statement_errors(self, statement: Any, message: str) -> None:
        first = {"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"}
        with pytest.raises(PolicyError, match=message):
            parse_policy(document(first, statement))

    @pytest.mark.parametrize(
        ("statement", "message"),
        [
            ({"Effect": "Allow", "Action": "*"}, "exactly one of Principal or NotPrincipal"),
            (
                {"Effect": "Allow", "Action": "*", "Principal": "*", "NotPrincipal": "*"},
                "exactly one of Principal or NotPrincipal",
            ),
            ({"Effect": "Allow", "Action": "*", "Principal": "alice"}, 'must be "\\*" or an'),
            ({"Effect": "Allow", "Action": "*", "Principal": {}}, 'must be "\\*" or an'),
            ({"Effect": "Allow", "Action": "*", "Principal": {"AWS": "alice"}}, "is not"),
            ({"Effect": "Allow", "Action": "*", "Principal": {"AWS": "12345"}}, "is not"),
            ({"Effect": "Allow", "Action": "*", "Principal": {"AWS": []}}, "must not be empty"),
            ({"Effect": "Allow", "Action": "*", "Principal": {"AWS": [1]}}, "non-empty strings"),
            (
                {"Effect": "Allow", "Action": "*", "Principal": {"AWS": f"{ALICE[:-5]}*"}},
                "is not",
            ),
            (
                {"Effect": "Allow", "Action": "*", "Principal": {"Federated": "x"}},
                "unsupported principal type 'Federated'",
            ),
            (
                {"Effect": "Allow", "Action": "*", "Principal": {"Service": "*"}},
                "must not contain wildcards",
            ),
        ],
    )
    def test_resource_policy_errors(self, statement: dict[str, Any], message: str) -> None:
        with pytest.raises(PolicyError, match=message):
            parse_policy(document(statement), resource_policy=True)

    @pytest.mark.parametrize(
        ("condition", "message"),
        [
            ("x", r"Statement\[0\]\.Condition must be an object"),
            ({"StringEqualz": {"aws:username": "a"}}, "unknown condition operator 'StringEqualz'"),
            (
                {"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}},
                "unknown condition set operator 'ForSomeValues'",
            ),
            ({"NullIfExists": {"aws:username": "true"}}, "Null takes no IfExists"),
            ({"ForAnyValue:Null": {"aws:TagKeys": "true"}}, "Null takes no IfExists"),
            ({"StringEquals": "alice"}, "StringEquals must be a non-empty object"),
            ({"StringEquals": {}}, "StringEquals must be a non-empty object"),
            ({"StringEquals": {"username": "a"}}, "key 'username' must be 'prefix:name'"),
            ({"StringEquals": {"aws:username": []}}, "must not be an empty list"),
            ({"StringEquals": {"aws:username": {"a": 1}}}, "strings, numbers or booleans"),
            ({"StringEquals": {"aws:username": None}}, "strings, numbers or booleans"),
            ({"IpAddress": {"aws:SourceIp": "not-an-ip"}}, "not an IP address or CIDR"),
            ({"NumericLessThan": {"ecr:Count": "ten"}}, "'ten' is not a number"),
            ({"DateLessThan": {"aws:CurrentTime": "yesterday"}}, "not an ISO 8601 date"),
            ({"Bool": {"aws:SecureTransport": "yes"}}, 'must be "true" or "false"'),
            ({"Null": {"aws:username": "maybe"}}, 'must be "true" or "false"'),
        ],
    )
    def test_condition_errors(self, condition: Any, message: str) -> None:
        with pytest.raises(PolicyError, match=message):
            parse_policy(document(allow(Condition=condition)))

    def test_condition_error_names_the_statement_and_key(self) -> None:
        with pytest.raises(PolicyError) as excinfo:
            parse_policy(
                document(allow(), allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.300"}}))
            )
        assert "Statement[1].Condition.IpAddress.aws:SourceIp" in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# Actions and resources
# --------------------------------------------------------------------------------------------


class TestActions:
    @pytest.mark.parametrize(
        ("pattern", "action", "matches"),
        [
            (PULL, PULL, True),
            ("ECR:batchgetimage", PULL, True),
            (PULL, "ecr:batchgetimage", True),
            ("ecr:*", PUSH, True),
            ("*", PUSH, True),
            ("ecr:Batch*", PULL, True),
            ("ecr:Batch*", "ecr:BatchDeleteImage", True),
            ("ecr:Batch*", PUSH, False),
            ("ecr:Get?ownloadUrlForLayer", "ecr:GetDownloadUrlForLayer", True),
            ("ecr:Get?ownloadUrlForLayer", "ecr:GetXXownloadUrlForLayer", False),
            ("ecr:*Image", PUSH, True),
            ("s3:*", PULL, False),
            ("ecr:BatchGetImage", "ecr:BatchGetImages", False),
            ("ecr-public:*", PULL, False),
        ],
    )
    def test_action_wildcards(self, pattern: str, action: str, matches: bool) -> None:
        policy = identity(allow(pattern))
        assert (effect(policy, request(action)) == "Allow") is matches

    def test_any_action_in_a_list(self) -> None:
        policy = identity(allow([PUSH, "ecr:Get*"]))
        assert effect(policy, request("ecr:GetDownloadUrlForLayer")) == "Allow"
        assert effect(policy, request(PUSH)) == "Allow"
        assert effect(policy, request(PULL)) is None

    def test_not_action(self) -> None:
        policy = identity({"Effect": "Allow", "NotAction": "ecr:Delete*", "Resource": "*"})
        assert effect(policy, request(PULL)) == "Allow"
        assert effect(policy, request("ecr:DeleteRepository")) is None

    def test_not_action_with_deny(self) -> None:
        policy = identity(
            allow("*"),
            {"Effect": "Deny", "NotAction": ["ecr:BatchGetImage", "ecr:Get*"], "Resource": "*"},
        )
        assert effect(policy, request(PULL)) == "Allow"
        assert effect(policy, request(PUSH)) == "Deny"


class TestResources:
    @pytest.mark.parametrize(
        ("pattern", "resource", "matches"),
        [
            (REPO, REPO, True),
            ("*", REPO, True),
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/*", REPO, True),
            # * crosses "/" as IAM does
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/*", REPO + "/sub/deep", True),
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team*", REPO, True),
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other/*", REPO, False),
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/ap?", REPO, True),
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/a?", REPO, False),
            # case-sensitive
            (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/Team/app", REPO, False),
            (f"arn:aws:ecr:*:{ACCOUNT}:repository/team/app", REPO, True),
            (f"arn:aws:ecr:us-*:{ACCOUNT}:repository/team/app", REPO, True),
            (f"arn:aws:ecr:eu-*:{ACCOUNT}:repository/team/app", REPO, False),
            ("arn:aws:ecr:*:*:repository/*", REPO, True),
            (f"arn:aws:ecr:{REGION}:{OTHER}:repository/*", REPO, False),
            # a * ending a segment may expand across ':' (IAM documents this)
            ("arn:aws:ecr:*", REPO, True),
            ("arn:aws:ecr:*:repository/team/app", REPO, True),
            # a * inside a segment, and ?, stay within their segment
            ("arn:aws:ecr:us-*1:repository/team/app", REPO, False),
            ("arn:aws:ecr:us-*2:repository/team/app", REPO, False),
            (f"arn:aws:ecr:us-east-1?{ACCOUNT}:repository/team/app", REPO, False),
            ("arn:aws:ecr:us-east-?:*", REPO, True),
            ("arn:aws:ecr:us-east-?:repository/team/app", REPO, False),
            ("arn:aws:s3:::*", REPO, False),
        ],
    )
    def test_resource_wildcards(self, pattern: str, resource: str, matches: bool) -> None:
        policy = identity(allow(PULL, pattern))
        assert (effect(policy, request(resource=resource)) == "Allow") is matches

    def test_not_resource(self) -> None:
        policy = identity(
            {
                "Effect": "Allow",
                "Action": "ecr:*",
                "NotResource": "arn:aws:ecr:*:*:repository/prod/*",
            }
        )
        assert effect(policy, request(resource=REPO)) == "Allow"
        prod = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/prod/api"
        assert effect(policy, request(resource=prod)) is None

    def test_deny_with_not_resource(self) -> None:
        sandbox = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/sandbox/*"
        policy = identity(
            allow(),
            {"Effect": "Deny", "Action": PUSH, "NotResource": sandbox},
        )
        assert effect(policy, request(PUSH)) == "Deny"
        assert effect(policy, request(PUSH, resource=sandbox[:-1] + "x")) == "Allow"

    def test_username_variable(self) -> None:
        policy = identity(allow(PUSH, f"arn:aws:ecr:*:{ACCOUNT}:repository/${{aws:username}}/*"))
        mine = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/alice/app"
        theirs = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/carol/app"
        assert effect(policy, request(PUSH, resource=mine)) == "Allow"
        assert effect(policy, request(PUSH, resource=theirs)) is None
        assert effect(policy, request(PUSH, principal=CAROL, resource=theirs)) == "Allow"

    def test_username_from_context_overrides_arn(self) -> None:
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:username}"))
        repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dora"
        assert effect(policy, request(PUSH, resource=repo, **{"aws:username": "dora"})) == "Allow"

    def test_variable_value_is_literal_not_a_wildcard(self) -> None:
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team}"))
        repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/anything"
        ctx = {"aws:PrincipalTag/team": "*"}
        assert effect(policy, request(PUSH, resource=repo, **ctx)) is None
        star = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/*"
        assert effect(policy, request(PUSH, resource=star, **ctx)) == "Allow"

    def test_missing_variable_does_not_match(self) -> None:
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team}/*"))
        repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/x/app"
        assert effect(policy, request(PUSH, resource=repo)) is None
        # the root principal has no aws:username
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:username}"))
        repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/root"
        assert effect(policy, request(PUSH, principal=ROOT, resource=repo)) is None

    def test_variable_default_value(self) -> None:
        policy = identity(
            allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team, 'shared'}/*")
        )
        shared = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/shared/app"
        assert effect(policy, request(PUSH, resource=shared)) == "Allow"
        ctx = {"aws:PrincipalTag/team": "web"}
        assert effect(policy, request(PUSH, resource=shared, **ctx)) is None

    def test_escaped_variables(self) -> None:
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/a${*}b${?}${$}"))
        literal = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/a*b?$"
        assert effect(policy, request(PUSH, resource=literal)) == "Allow"
        other = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/axxbx$"
        assert effect(policy, request(PUSH, resource=other)) is None

    def test_variables_are_literal_in_2008_and_versionless_policies(self) -> None:
        for version in ("2008-10-17", None):
            policy = identity(
                allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:username}"), version=version
            )
            alice = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/alice"
            literal = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/${{aws:username}}"
            assert effect(policy, request(PUSH, resource=alice)) is None
            assert effect(policy, request(PUSH, resource=literal)) == "Allow"

    def test_multivalued_key_cannot_be_a_variable(self) -> None:
        policy = identity(allow(PUSH, "arn:aws:ecr:*:*:repository/${aws:TagKeys}"))
        repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/a"
        assert effect(policy, request(PUSH, resource=repo, **{"aws:TagKeys": ["a"]})) is None


# --------------------------------------------------------------------------------------------
# Statement combination and principals
# --------------------------------------------------------------------------------------------


class TestStatementEffect:
    def test_default_is_none(self) -> None:
        assert effect(identity(allow(PUSH)), request(PULL)) is None

    def test_explicit_deny_beats_allow_in_either_order(self) -> None:
        assert effect(identity(allow(), deny(PULL)), request()) == "Deny"
        assert effect(identity(deny(PULL), allow()), request()) == "Deny"
        assert effect(identity(allow(), deny(PULL)), request(PUSH)) == "Allow"

    def test_deny_only(self) -> None:
        assert effect(identity(deny()), request()) == "Deny"

    def test_identity_statement_ignores_principal_in_identity_mode(self) -> None:
        policy = resource_policy(grant({"AWS": CAROL}, PULL))
        # As a resource policy the principal must match ...
        assert effect(policy, request(), as_resource_policy=True) is None
        # ... and a Principal present still has to match even outside resource mode.
        assert effect(policy, request()) is None
        assert effect(policy, request(principal=CAROL)) == "Allow"

    def test_identity_policy_does_not_apply_as_resource_policy(self) -> None:
        assert effect(identity(allow()), request(), as_resource_policy=True) is None


class TestPrincipals:
    def rp_effect(self, principal: Any, who: str, *, not_principal: bool = False) -> str | None:
        key = "NotPrincipal" if not_principal else "Principal"
        policy = resource_policy({"Effect": "Allow", key: principal, "Action": PULL})
        return effect(policy, request(principal=who), as_resource_policy=True)

    @pytest.mark.parametrize(
        ("principal", "who", "matches"),
        [
            ("*", ALICE, True),
            ("*", BOB, True),
            ({"AWS": "*"}, BOB, True),
            ({"AWS": ACCOUNT}, ALICE, True),
            ({"AWS": ACCOUNT}, ROOT, True),
            ({"AWS": ACCOUNT}, BOB, False),
            ({"AWS": ROOT}, ALICE, True),
            ({"AWS": OTHER_ROOT}, BOB, True),
            ({"AWS": OTHER_ROOT}, ALICE, False),
            ({"AWS": ALICE}, ALICE, True),
            ({"AWS": ALICE}, CAROL, False),
            ({"AWS": [CAROL, BOB]}, BOB, True),
            ({"AWS": [CAROL, BOB]}, ALICE, False),
            ({"Service": "codebuild.amazonaws.com"}, ALICE, False),
            ({"Service": "codebuild.amazonaws.com"}, "codebuild.amazonaws.com", True),
            ({"AWS": ACCOUNT}, "codebuild.amazonaws.com", False),
        ],
    )
    def test_principal(self, principal: Any, who: str, matches: bool) -> None:
        assert (self.rp_effect(principal, who) == "Allow") is matches

    def test_not_principal(self) -> None:
        assert self.rp_effect({"AWS": ALICE}, ALICE, not_principal=True) is None
        assert self.rp_effect({"AWS": ALICE}, CAROL, not_principal=True) == "Allow"
        assert self.rp_effect({"AWS": ACCOUNT}, BOB, not_principal=True) == "Allow"
        assert self.rp_effect({"AWS": ACCOUNT}, CAROL, not_principal=True) is None

    def test_deny_everyone_but_alice(self) -> None:
        policy = resource_policy(
            grant("*", PULL),
            {"Effect": "Deny", "NotPrincipal": {"AWS": ALICE}, "Action": PUSH},
        )
        assert effect(policy, request(PUSH), as_resource_policy=True) is None
        assert effect(policy, request(PUSH, principal=CAROL), as_resource_policy=True) == "Deny"

    def test_assumed_role_session_matches_its_role(self) -> None:
        session = f"arn:aws:sts::{ACCOUNT}:assumed-role/builder/session-1"
        for role in (
            f"arn:aws:iam::{ACCOUNT}:role/builder",
            f"arn:aws:iam::{ACCOUNT}:role/ci/builder",
            session,
        ):
            assert self.rp_effect({"AWS": role}, session) == "Allow"
        assert self.rp_effect({"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}, session) is None
        assert self.rp_effect({"AWS": f"arn:aws:iam::{OTHER}:role/builder"}, session) is None

    def test_from_principal(self) -> None:
        alice = Principal(account_id=ACCOUNT, user_name="alice", access_key_id="AKIA1")
        root = Principal(account_id=ACCOUNT, user_name="root", access_key_id="AKIA2", is_admin=True)
        req = AuthRequest.from_principal(alice, PULL, REPO, ACCOUNT, {"aws:SourceIp": "10.0.0.1"})
        assert req.principal_arn == ALICE
        assert req.principal_account == ACCOUNT
        assert req.context == {"aws:SourceIp": "10.0.0.1"}
        assert AuthRequest.from_principal(root, PULL, REPO, ACCOUNT).principal_arn == ROOT


# --------------------------------------------------------------------------------------------
# decide(): identity + resource policies, same and cross account
# --------------------------------------------------------------------------------------------


class TestDecide:
    def test_default_deny(self) -> None:
        assert decide(request(), [], []) == "ImplicitDeny"
        assert decide(request(), [identity(allow(PUSH))], []) == "ImplicitDeny"

    def test_identity_allow_same_account(self) -> None:
        assert decide(request(), [identity(allow(PULL, REPO))], []) == "Allow"

    def test_admin_is_allowed_in_own_account(self) -> None:
        assert decide(request(principal=ROOT), [], [], is_account_admin=True) == "Allow"

    def test_explicit_deny_beats_admin(self) -> None:
        rp = resource_policy(grant("*", PULL, effect="Deny"))
        assert decide(request(principal=ROOT), [], [rp], is_account_admin=True) == "Deny"
        ip = identity(deny(PULL))
        assert decide(request(), [ip], [], is_account_admin=True) == "Deny"

    def test_resource_policy_alone_allows_a_named_user_in_same_account(self) -> None:
        rp = resource_policy(grant({"AWS": ALICE}, [PULL, PUSH]))
        assert decide(request(PUSH), [], [rp]) == "Allow"
        assert decide(request(PUSH, principal=CAROL), [], [rp]) == "ImplicitDeny"
        assert decide(request("ecr:DeleteRepository"), [], [rp]) == "ImplicitDeny"

    def test_resource_policy_public(self) -> None:
        rp = resource_policy(grant("*", PULL))
        assert decide(request(), [], [rp]) == "Allow"

    def test_resource_policy_naming_own_account_delegates_to_identity_policies(self) -> None:
        rp = resource_policy(grant({"AWS": ACCOUNT}, PULL))
        assert decide(request(), [], [rp]) == "ImplicitDeny"
        assert decide(request(), [identity(allow(PULL))], [rp]) == "Allow"
        # ... but the account root itself is named directly.
        assert decide(request(principal=ROOT), [], [rp]) == "Allow"

    def test_deny_in_resource_policy_beats_identity_allow(self) -> None:
        rp = resource_policy(grant({"AWS": ACCOUNT}, PUSH, effect="Deny"))
        ip = identity(allow())
        assert decide(request(PUSH), [ip], [rp]) == "Deny"
        assert decide(request(PULL), [ip], [rp]) == "Allow"

    def test_deny_in_identity_policy_beats_resource_allow(self) -> None:
        rp = resource_policy(grant({"AWS": ALICE}))
        assert decide(request(PUSH), [identity(deny(PUSH))], [rp]) == "Deny"

    def test_deny_in_any_of_several_identity_policies(self) -> None:
        policies = [identity(allow()), identity(deny(PULL, REPO))]
        assert decide(request(), policies, []) == "Deny"

    def test_cross_account_needs_both_sides(self) -> None:
        cross = request(principal=BOB)
        rp = resource_policy(grant({"AWS": OTHER}, PULL))
        ip = identity(allow(PULL, REPO))
        assert decide(cross, [ip], [rp]) == "Allow"
        assert decide(cross, [ip], []) == "ImplicitDeny"
        assert decide(cross, [], [rp]) == "ImplicitDeny"
        assert decide(cross, [], [resource_policy(grant("*", PULL))]) == "ImplicitDeny"

    def test_cross_account_admin_counts_as_identity_allow(self) -> None:
        cross = request(principal=OTHER_ROOT)
        rp = resource_policy(grant({"AWS": OTHER_ROOT}, PULL))
        assert decide(cross, [], [rp], is_account_admin=True) == "Allow"
        assert decide(cross, [], [], is_account_admin=True) == "ImplicitDeny"

    def test_cross_account_user_named_directly(self) -> None:
        rp = resource_policy(grant({"AWS": BOB}, PULL))
        ip = identity(allow(PULL))
        assert decide(request(principal=BOB), [ip], [rp]) == "Allow"
        assert decide(request(principal=BOB, resource=REPO), [ip], [rp]) == "Allow"
        other_user = f"arn:aws:iam::{OTHER}:user/eve"
        assert decide(request(principal=other_user), [ip], [rp]) == "ImplicitDeny"

    def test_cross_account_resource_allow_for_other_action_does_not_help(self) -> None:
        rp = resource_policy(grant({"AWS": OTHER}, PULL))
        ip = identity(allow())
        assert decide(request(PUSH, principal=BOB), [ip], [rp]) == "ImplicitDeny"

    def test_cross_account_deny_in_resource_policy(self) -> None:
        rp = resource_policy(grant({"AWS": OTHER}), grant({"AWS": BOB}, PUSH, effect="Deny"))
        ip = identity(allow())
        assert decide(request(PULL, principal=BOB), [ip], [rp]) == "Allow"
        assert decide(request(PUSH, principal=BOB), [ip], [rp]) == "Deny"

    def test_registry_policy_with_resource(self) -> None:
        registry = resource_policy(
            grant(
                {"AWS": OTHER},
                ["ecr:CreateRepository", "ecr:ReplicateImage"],
                Resource=f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/replica/*",
            )
        )
        ip = identity(allow())
        replica = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/replica/app"
        ok = request("ecr:ReplicateImage", principal=BOB, resource=replica)
        assert decide(ok, [ip], [registry]) == "Allow"
        elsewhere = request("ecr:ReplicateImage", principal=BOB)
        assert decide(elsewhere, [ip], [registry]) == "ImplicitDeny"

    def test_repository_and_registry_policies_combine(self) -> None:
        repo_policy = resource_policy(grant({"AWS": ALICE}, PULL))
        registry_policy = resource_policy(grant({"AWS": ALICE}, PULL, effect="Deny"))
        assert decide(request(), [], [repo_policy]) == "Allow"
        assert decide(request(), [], [repo_policy, registry_policy]) == "Deny"

    def test_service_principal_needs_only_the_resource_policy(self) -> None:
        service = "codebuild.amazonaws.com"
        rp = resource_policy(
            grant(
                {"Service": service},
                PULL,
                Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            )
        )
        ok = request(principal=service, **{"aws:SourceAccount": ACCOUNT})
        assert decide(ok, [], [rp]) == "Allow"
        assert decide(request(PUSH, principal=service), [], [rp]) == "ImplicitDeny"
        wrong = request(principal=service, **{"aws:SourceAccount": OTHER})
        assert decide(wrong, [], [rp]) == "ImplicitDeny"
        assert decide(ok, [], [resource_policy(grant({"AWS": ACCOUNT}, PULL))]) == "ImplicitDeny"
        assert holds({"StringEquals": {"aws:PrincipalServiceName": service}}, principal=service)
        assert holds({"Null": {"aws:PrincipalArn": "true"}}, principal=service)

    def test_cross_account_with_condition_on_principal_account(self) -> None:
        rp = resource_policy(
            grant("*", PULL, Condition={"StringEquals": {"aws:PrincipalAccount": OTHER}})
        )
        ip = identity(allow())
        assert decide(request(principal=BOB), [ip], [rp]) == "Allow"
        eve = "arn:aws:iam::999999999999:user/eve"
        assert decide(request(principal=eve), [ip], [rp]) == "ImplicitDeny"


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------


def holds(condition: dict[str, Any], principal: str = ALICE, **context: Any) -> bool:
    policy = identity(allow(Condition=condition))
    return effect(policy, request(principal=principal, **context)) == "Allow"


class TestStringConditions:
    @pytest.mark.parametrize(
        ("operator", "expected", "actual", "result"),
        [
            ("StringEquals", "web", "web", True),
            ("StringEquals", "web", "Web", False),
            ("StringEquals", "w*", "web", False),
            ("StringEquals", "w*", "w*", True),
            ("StringEquals", ["api", "web"], "web", True),
            ("StringNotEquals", "web", "web", False),
            ("StringNotEquals", "web", "api", True),
            ("StringNotEquals", ["api", "web"], "web", False),
            ("StringNotEquals", ["api", "web"], "db", True),
            ("StringEqualsIgnoreCase", "WEB", "web", True),
            ("StringEqualsIgnoreCase", "WEB", "api", False),
            ("StringNotEqualsIgnoreCase", "WEB", "web", False),
            ("StringNotEqualsIgnoreCase", "WEB", "api", True),
            ("StringLike", "w*", "web", True),
            ("StringLike", "w?b", "web", True),
            ("StringLike", "w?b", "weeb", False),
            ("StringLike", "W*", "web", False),
            ("StringLike", ["a*", "*b"], "web", True),
            ("StringNotLike", "w*", "web", False),
            ("StringNotLike", "a*", "web", True),
            ("StringNotLike", ["a*", "*b"], "web", False),
        ],
    )
    def test_operators(self, operator: str, expected: Any, actual: str, result: bool) -> None:
        ctx = {"aws:PrincipalTag/team": actual}
        assert holds({operator: {"aws:PrincipalTag/team": expected}}, **ctx) is result

    @pytest.mark.parametrize(
        ("operator", "result"),
        [
            ("StringEquals", False),
            ("StringEqualsIgnoreCase", False),
            ("StringLike", False),
            ("StringNotEquals", True),
            ("StringNotEqualsIgnoreCase", True),
            ("StringNotLike", True),
            ("StringEqualsIfExists", True),
            ("StringLikeIfExists", True),
            ("StringNotEqualsIfExists", True),
        ],
    )
    def test_missing_key(self, operator: str, result: bool) -> None:
        assert holds({operator: {"aws:PrincipalTag/team": "web"}}) is result

    def test_if_exists_still_checks_present_key(self) -> None:
        cond = {"StringEqualsIfExists": {"aws:PrincipalTag/team": "web"}}
        assert holds(cond, **{"aws:PrincipalTag/team": "web"})
        assert not holds(cond, **{"aws:PrincipalTag/team": "api"})

    def test_condition_key_names_are_case_insensitive(self) -> None:
        upper = {"StringEquals": {"AWS:PRINCIPALTAG/Team": "web"}}
        lower = {"StringEquals": {"aws:principaltag/team": "web"}}
        assert holds(upper, **{"aws:principaltag/team": "web"})
        assert holds(lower, **{"AWS:PrincipalTag/TEAM": "web"})

    def test_principal_tag(self) -> None:
        cond = {"StringEquals": {"aws:PrincipalTag/department": ["eng", "ops"]}}
        assert holds(cond, **{"aws:PrincipalTag/department": "ops"})
        assert not holds(cond, **{"aws:PrincipalTag/department": "sales"})
        assert not holds(cond)

    def test_resource_tag(self) -> None:
        cond = {"StringEquals": {"ecr:ResourceTag/env": "dev"}}
        assert holds(cond, **{"ecr:ResourceTag/env": "dev"})
        assert not holds(cond, **{"ecr:ResourceTag/env": "prod"})
        assert not holds(cond)

    def test_deny_unless_resource_tag_matches_principal_tag(self) -> None:
        policy = identity(
            allow(),
            deny(
                Condition={"StringNotEquals": {"ecr:ResourceTag/team": "${aws:PrincipalTag/team}"}}
            ),
        )
        same = {"ecr:ResourceTag/team": "web", "aws:PrincipalTag/team": "web"}
        different = {"ecr:ResourceTag/team": "api", "aws:PrincipalTag/team": "web"}
        assert effect(policy, request(**same)) == "Allow"
        assert effect(policy, request(**different)) == "Deny"
        # no principal tag: the variable has no value, nothing equals it, so the Deny applies
        assert effect(policy, request(**{"ecr:ResourceTag/team": "web"})) == "Deny"

    def test_string_like_with_variable(self) -> None:
        cond = {"StringLike": {"ecr:ResourceTag/owner": "${aws:username}-*"}}
        assert holds(cond, **{"ecr:ResourceTag/owner": "alice-bot"})
        assert not holds(cond, **{"ecr:ResourceTag/owner": "carol-bot"})

    def test_username_is_derived_for_users_only(self) -> None:
        cond = {"StringEquals": {"aws:username": "alice"}}
        assert holds(cond)
        assert not holds(cond, principal=CAROL)
        assert not holds({"Null": {"aws:username": "false"}}, principal=ROOT)
        path_user = f"arn:aws:iam::{ACCOUNT}:user/division/alice"
        assert holds(cond, principal=path_user)

    def test_derived_principal_keys(self) -> None:
        assert holds({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})
        assert holds({"ArnEquals": {"aws:PrincipalArn": ALICE}})
        assert holds({"StringEquals": {"aws:ResourceAccount": ACCOUNT}})
        assert holds({"StringEquals": {"aws:PrincipalType": "User"}})
        assert holds({"StringEquals": {"aws:PrincipalType": "Account"}}, principal=ROOT)

    def test_all_keys_in_a_block_are_anded(self) -> None:
        cond = {
            "StringEquals": {"aws:PrincipalTag/team": "web", "ecr:ResourceTag/env": "dev"},
            "Bool": {"aws:SecureTransport": "true"},
        }
        full = {
            "aws:PrincipalTag/team": "web",
            "ecr:ResourceTag/env": "dev",
            "aws:SecureTransport": "true",
        }
        assert holds(cond, **full)
        for key in full:
            partial = {k: v for k, v in full.items() if k != key}
            assert not holds(cond, **partial)

    def test_none_in_context_means_absent(self) -> None:
        ctx = {"aws:PrincipalTag/team": None}
        assert not holds({"StringEquals": {"aws:PrincipalTag/team": "web"}}, **ctx)
        assert holds({"Null": {"aws:PrincipalTag/team": "true"}}, **ctx)

    def test_numbers_and_booleans_in_policy_are_strings(self) -> None:
        assert holds({"StringEquals": {"ecr:ResourceTag/tier": 3}}, **{"ecr:ResourceTag/tier": "3"})


class TestArnConditions:
    @pytest.mark.parametrize(
        ("operator", "expected", "result"),
        [
            ("ArnEquals", ALICE, True),
            ("ArnEquals", CAROL, False),
            ("ArnLike", f"arn:aws:iam::{ACCOUNT}:user/*", True),
            ("ArnLike", "arn:aws:iam::*:user/al?ce", True),
            ("ArnLike", f"arn:aws:iam::{OTHER}:user/*", False),
            ("ArnEquals", f"arn:aws:iam::{ACCOUNT}:user/*", True),
            ("ArnNotEquals", ALICE, False),
            ("ArnNotEquals", CAROL, True),
            ("ArnNotLike", f"arn:aws:iam::{ACCOUNT}:*", False),
            ("ArnNotLike", [f"arn:aws:iam::{OTHER}:*", CAROL], True),
        ],
    )
    def test_operators(self, operator: str, expected: Any, result: bool) -> None:
        assert holds({operator: {"aws:PrincipalArn": expected}}) is result

    def test_source_arn(self) -> None:
        cond = {"ArnLike": {"aws:SourceArn": f"arn:aws:codebuild:*:{ACCOUNT}:project/*"}}
        arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/build"
        assert holds(cond, **{"aws:SourceArn": arn})
        assert not holds(cond, **{"aws:SourceArn": arn.replace(ACCOUNT, OTHER)})
        assert not holds(cond)
        assert holds({"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::*"}})


class TestNumericConditions:
    @pytest.mark.parametrize(
        ("operator", "expected", "actual", "result"),
        [
            ("NumericEquals", "10", "10", True),
            ("NumericEquals", "10", "10.0", True),
            ("NumericEquals", 10, "11", False),
            ("NumericNotEquals", "10", "11", True),
            ("NumericNotEquals", ["10", "11"], "11", False),
            ("NumericLessThan", "10", "9", True),
            ("NumericLessThan", "10", "10", False),
            ("NumericLessThanEquals", "10", "10", True),
            ("NumericLessThanEquals", "10", "11", False),
            ("NumericGreaterThan", "10", "11", True),
            ("NumericGreaterThan", "10", "10", False),
            ("NumericGreaterThanEquals", "10", "10", True),
            ("NumericGreaterThanEquals", "10.5", "10", False),
            ("NumericLessThan", "-1", "-2", True),
            ("NumericLessThan", "10", "not-a-number", False),
        ],
    )
    def test_operators(self, operator: str, expected: Any, actual: str, result: bool) -> None:
        cond = {operator: {"ecr:ImageCount": expected}}
        assert holds(cond, **{"ecr:ImageCount": actual}) is result

    def test_missing(self) -> None:
        assert not holds({"NumericLessThan": {"ecr:ImageCount": "1"}})
        assert holds({"NumericNotEquals": {"ecr:ImageCount": "1"}})
        assert holds({"NumericLessThanIfExists": {"ecr:ImageCount": "1"}})


class TestDateConditions:
    NOW = "2024-06-15T12:00:00Z"

    @pytest.mark.parametrize(
        ("operator", "expected", "result"),
        [
            ("DateLessThan", "2024-12-31T23:59:59Z", True),
            ("DateLessThan", "2024-01-01T00:00:00Z", False),
            ("DateLessThan", NOW, False),
            ("DateLessThanEquals", NOW, True),
            ("DateGreaterThan", "2024-01-01T00:00:00Z", True),
            ("DateGreaterThan", "2025-01-01", False),
            ("DateGreaterThan", NOW, False),
            ("DateGreaterThanEquals", NOW, True),
            ("DateEquals", NOW, True),
            ("DateEquals", "2024-06-15T14:00:00+02:00", True),
            ("DateEquals", "2024-06-15T12:00:01Z", False),
            ("DateNotEquals", NOW, False),
            ("DateNotEquals", "2024-06-15T12:00:01Z", True),
            # epoch seconds
            ("DateEquals", "1718452800", True),
            ("DateLessThan", 1718452801, True),
            ("DateGreaterThan", "1718452801", False),
        ],
    )
    def test_current_time(self, operator: str, expected: Any, result: bool) -> None:
        ctx = {"aws:CurrentTime": self.NOW}
        assert holds({operator: {"aws:CurrentTime": expected}}, **ctx) is result

    def test_time_window(self) -> None:
        cond = {
            "DateGreaterThan": {"aws:CurrentTime": "2024-06-01T00:00:00Z"},
            "DateLessThan": {"aws:CurrentTime": "2024-07-01T00:00:00Z"},
        }
        assert holds(cond, **{"aws:CurrentTime": "2024-06-15T00:00:00Z"})
        assert not holds(cond, **{"aws:CurrentTime": "2024-05-31T23:59:59Z"})
        assert not holds(cond, **{"aws:CurrentTime": "2024-07-01T00:00:00Z"})

    def test_context_epoch_time(self) -> None:
        cond = {"DateGreaterThan": {"aws:EpochTime": "2024-01-01T00:00:00Z"}}
        assert holds(cond, **{"aws:EpochTime": "1718452800"})
        assert not holds(cond, **{"aws:EpochTime": "1600000000"})

    def test_current_time_defaults_to_now(self) -> None:
        assert holds({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
        assert not holds({"DateGreaterThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}})
        assert holds({"DateGreaterThan": {"aws:EpochTime": "2020-01-01T00:00:00Z"}})

    def test_unparseable_context_date_does_not_match(self) -> None:
        ctx = {"aws:CurrentTime": "whenever"}
        assert not holds({"DateLessThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}}, **ctx)

    def test_naive_dates_are_utc(self) -> None:
        ctx = {"aws:CurrentTime": "2024-06-15T12:00:00"}
        assert holds({"DateEquals": {"aws:CurrentTime": "2024-06-15T12:00:00Z"}}, **ctx)


class TestBoolAndNull:
    @pytest.mark.parametrize(
        ("expected", "actual", "result"),
        [
            ("true", "true", True),
            ("true", True, True),
            (True, "true", True),
            ("TRUE", "True", True),
            ("true", "false", False),
            ("false", False, True),
            ("false", True, False),
        ],
    )
    def test_secure_transport(self, expected: Any, actual: Any, result: bool) -> None:
        cond = {"Bool": {"aws:SecureTransport": expected}}
        assert holds(cond, **{"aws:SecureTransport": actual}) is result

    def test_bool_missing_key(self) -> None:
        assert not holds({"Bool": {"aws:SecureTransport": "false"}})
        assert holds({"BoolIfExists": {"aws:SecureTransport": "false"}})

    def test_deny_insecure_transport(self) -> None:
        policy = identity(allow(), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))
        assert effect(policy, request(**{"aws:SecureTransport": "false"})) == "Deny"
        assert effect(policy, request(**{"aws:SecureTransport": "true"})) == "Allow"

    def test_null(self) -> None:
        absent = {"Null": {"ecr:ResourceTag/env": "true"}}
        present = {"Null": {"ecr:ResourceTag/env": "false"}}
        assert holds(absent)
        assert not holds(present)
        assert holds(present, **{"ecr:ResourceTag/env": "dev"})
        assert not holds(absent, **{"ecr:ResourceTag/env": "dev"})
        assert holds({"Null": {"aws:TagKeys": True}}, **{"aws:TagKeys": []})

    def test_binary_equals(self) -> None:
        assert holds({"BinaryEquals": {"ecr:Blob": "QmluYXJ5"}}, **{"ecr:Blob": "QmluYXJ5"})
        assert not holds({"BinaryEquals": {"ecr:Blob": "QmluYXJ5"}}, **{"ecr:Blob": "eA=="})


class TestIpConditions:
    @pytest.mark.parametrize(
        ("operator", "expected", "source", "result"),
        [
            ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
            ("IpAddress", "203.0.113.0/24", "203.0.114.7", False),
            ("IpAddress", "203.0.113.7", "203.0.113.7", True),
            ("IpAddress", "203.0.113.7/32", "203.0.113.8", False),
            ("IpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "192.168.1.1", True),
            ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
            ("IpAddress", "2001:db8::/32", "2001:db9::1", False),
            ("IpAddress", "10.0.0.0/8", "::1", False),
            ("IpAddress", "::/0", "10.0.0.1", False),
            ("IpAddress", "10.0.0.0/8", "garbage", False),
            ("NotIpAddress", "203.0.113.0/24", "203.0.113.7", False),
            ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
            ("NotIpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "10.1.1.1", False),
            ("NotIpAddress", "2001:db8::/32", "2001:db8::1", False),
            ("IpAddress", "10.0.0.1/8", "10.2.3.4", True),  # host bits allowed
        ],
    )
    def test_source_ip(self, operator: str, expected: Any, source: str, result: bool) -> None:
        assert holds({operator: {"aws:SourceIp": expected}}, **{"aws:SourceIp": source}) is result

    def test_missing_source_ip(self) -> None:
        assert not holds({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})
        assert holds({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})

    def test_deny_outside_corporate_network(self) -> None:
        policy = identity(
            allow(), deny(Condition={"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "fd00::/8"]}})
        )
        assert effect(policy, request(**{"aws:SourceIp": "10.9.8.7"})) == "Allow"
        assert effect(policy, request(**{"aws:SourceIp": "fd12::1"})) == "Allow"
        assert effect(policy, request(**{"aws:SourceIp": "8.8.8.8"})) == "Deny"


class TestSetOperators:
    KEY = "aws:TagKeys"

    @pytest.mark.parametrize(
        ("operator", "expected", "actual", "result"),
        [
            ("ForAllValues:StringEquals", ["env", "team"], ["env"], True),
            ("ForAllValues:StringEquals", ["env", "team"], ["env", "team"], True),
            ("ForAllValues:StringEquals", ["env", "team"], ["env", "cost"], False),
            ("ForAllValues:StringEquals", ["env"], [], True),
            ("ForAllValues:StringEquals", ["env"], None, True),
            ("ForAnyValue:StringEquals", ["env", "team"], ["cost", "team"], True),
            ("ForAnyValue:StringEquals", ["env", "team"], ["cost"], False),
            ("ForAnyValue:StringEquals", ["env"], [], False),
            ("ForAnyValue:StringEquals", ["env"], None, False),
            ("ForAnyValue:StringEqualsIfExists", ["env"], None, True),
            ("ForAllValues:StringLike", "Created*", ["CreatedBy", "CreatedAt"], True),
            ("ForAllValues:StringLike", "Created*", ["CreatedBy", "Owner"], False),
            ("ForAnyValue:StringLike", "Created*", ["CreatedBy", "Owner"], True),
            # negated operators apply per request value
            ("ForAllValues:StringNotEquals", ["secret", "admin"], ["env", "team"], True),
            ("ForAllValues:StringNotEquals", ["secret", "admin"], ["env", "admin"], False),
            ("ForAnyValue:StringNotEquals", ["secret"], ["secret", "env"], True),
            ("ForAnyValue:StringNotEquals", ["secret"], ["secret"], False),
            ("forallvalues:stringequals", ["env"], ["env"], True),
            # a single string in the context is a one-element set
            ("ForAllValues:StringEquals", ["env"], "env", True),
        ],
    )
    def test_set_operators(self, operator: str, expected: Any, actual: Any, result: bool) -> None:
        assert holds({operator: {self.KEY: expected}}, **{self.KEY: actual}) is result

    def test_multivalued_key_without_set_operator(self) -> None:
        assert holds({"StringEquals": {self.KEY: "env"}}, **{self.KEY: ["cost", "env"]})
        assert not holds({"StringEquals": {self.KEY: "env"}}, **{self.KEY: ["cost"]})
        assert not holds({"StringNotEquals": {self.KEY: "env"}}, **{self.KEY: ["cost", "env"]})
        assert holds({"StringNotEquals": {self.KEY: "env"}}, **{self.KEY: ["cost"]})
