"""Repository, image and settings pages against a real server: what they show, and that each
is authorized as the ECR action it performs (checked with IAM users and boto3)."""

from __future__ import annotations

import json
import re

import pytest

from console.consolehelp import csrf_token, signed_in
from e2e.ecrhelp import allow, client, make_user, unique

READ_ONLY = (
    "ecr:DescribeRepositories",
    "ecr:DescribeImages",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:DescribeImageScanFindings",
)
KEEP_ONE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep one",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


def _digest(html: str) -> str:
    match = re.search(r"digest=(sha256%3A[0-9a-f]{64})", html)
    assert match, "no image link"
    return match.group(1).replace("%3A", ":")


def test_repository_and_image_pages_show_the_pushed_image(console_server, pushed) -> None:
    visitor = signed_in(console_server)
    page = visitor.get(f"repository?name={pushed}")
    assert page.status_code == 200
    assert ">1.0<" in page.text and ">latest<" in page.text
    digest = _digest(page.text)
    assert f"docker pull {console_server.host}/{pushed}@{digest}" in page.text
    image = visitor.get(f"image?name={pushed}&digest={digest}")
    assert image.status_code == 200
    assert 'id="manifest-json"' in image.text and 'id="config-json"' in image.text
    assert image.text.count("<tr><td>") >= 2  # two layers
    assert "&#34;rootfs&#34;" in image.text  # the config, pretty-printed and escaped


def test_missing_and_hostile_names_are_clear_errors(console_server, pushed) -> None:
    visitor = signed_in(console_server)
    assert visitor.get(f"repository?name={unique('none')}").status_code == 404
    assert visitor.get("repository?name=..%2F..%2Fetc").status_code == 400
    assert visitor.get("repository").status_code == 400
    assert visitor.get(f"image?name={pushed}&digest=sha256:zz").status_code in (400, 404)
    assert visitor.get(f"repository?name={pushed}&token=%%%").status_code == 400


def test_user_without_describe_images_cannot_see_images(console_server, pushed, tmp) -> None:
    key, secret = make_user(
        console_server, unique("noimages"), allow("ecr:DescribeRepositories"), tmp=tmp
    )
    visitor = signed_in(console_server, key, secret)
    page = visitor.get(f"repository?name={pushed}")
    assert page.status_code == 403
    assert "ecr:DescribeImages" in page.text
    assert ">latest<" not in page.text and "sha256:" not in page.text
    admin = signed_in(console_server)
    digest = _digest(admin.get(f"repository?name={pushed}").text)
    image = visitor.get(f"image?name={pushed}&digest={digest}")
    assert image.status_code == 403
    assert "ecr:BatchGetImage" in image.text
    assert "rootfs" not in image.text


def test_repository_policy_deny_applies_to_the_console(console_server, tmp) -> None:
    name = unique("console/denied")
    ecr = client(console_server)
    ecr.create_repository(repositoryName=name)
    key, secret = make_user(console_server, unique("denied"), allow(*READ_ONLY), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    assert visitor.get(f"repository?name={name}").status_code == 200
    ecr.set_repository_policy(
        repositoryName=name,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:DescribeImages"}],
            }
        ),
    )
    assert visitor.get(f"repository?name={name}").status_code == 403


def test_read_only_user_sees_no_edit_controls_and_cannot_post(console_server, pushed, tmp) -> None:
    key, secret = make_user(console_server, unique("reader"), allow(*READ_ONLY), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    page = visitor.get(f"settings?name={pushed}")
    assert page.status_code == 200
    assert "<textarea" not in page.text
    assert 'action="/console/settings' not in page.text
    assert "<select" not in page.text
    # A POST a page never offered is still refused, by the authorizer (with a valid token).
    response = visitor.post(
        f"settings?name={pushed}",
        {"csrf_token": csrf_token(page.text), "action": "lifecycle-save", "lifecycle": KEEP_ONE},
    )
    assert response.status_code == 403
    assert "ecr:PutLifecyclePolicy" in response.text
    ecr = client(console_server)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=pushed)


def test_lifecycle_preview_then_save(console_server, tmp) -> None:
    from e2e.ecrhelp import push
    from imagebuilder import build_image

    name = unique("console/lifecycle")
    for i in range(2):
        push(console_server, build_image(tmp / f"i{i}", [1000 + i]), f"{name}:v{i}")
    visitor = signed_in(console_server)
    ecr = client(console_server)
    preview = visitor.submit(
        f"settings?name={name}",
        f"settings?name={name}",
        {"action": "lifecycle-preview", "lifecycle": KEEP_ONE},
    )
    assert preview.status_code == 200
    assert "Preview: 1 image(s) would expire" in preview.text
    assert ">v0<" in preview.text
    # Previewing saved nothing.
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=name)
    saved = visitor.post(
        f"settings?name={name}",
        {"csrf_token": csrf_token(preview.text), "action": "lifecycle-save", "lifecycle": KEEP_ONE},
    )
    assert saved.status_code == 303
    stored = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
    assert json.loads(stored)["rules"][0]["description"] == "keep one"
    bad = visitor.post(
        f"settings?name={name}",
        {"csrf_token": csrf_token(preview.text), "action": "lifecycle-save", "lifecycle": "{"},
    )
    assert bad.status_code == 400
    assert 'id="lifecycle-error"' in bad.text
    assert ">{</textarea>" in bad.text  # what was typed is kept


def test_settings_change_through_ecr_actions(console_server, tmp) -> None:
    name = unique("console/settings")
    ecr = client(console_server)
    ecr.create_repository(repositoryName=name, tags=[{"Key": "team", "Value": "<payments>"}])
    visitor = signed_in(console_server)
    page = f"settings?name={name}"
    shown = visitor.get(page)
    assert "<dt>team</dt><dd>&lt;payments&gt;</dd>" in shown.text  # escaped
    assert (
        visitor.submit(
            page, page, {"action": "mutability", "imageTagMutability": "IMMUTABLE"}
        ).status_code
        == 303
    )
    assert visitor.submit(page, page, {"action": "scanning", "scanOnPush": "on"}).status_code == 303
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    bad = visitor.submit(
        page,
        page,
        {
            "action": "policy-save",
            "policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}',
        },
    )
    assert bad.status_code == 400
    assert 'id="policy-error"' in bad.text and "Effect" in bad.text
    assert 'aria-invalid="true"' in bad.text
    odd = visitor.submit(page, page, {"action": "mutability", "imageTagMutability": "SOMETIMES"})
    assert odd.status_code == 400
    assert visitor.submit(page, page, {"action": "drop-tables"}).status_code == 400


def test_index_platforms_referrers_and_untagged(console_server) -> None:
    from e2e.ocihttp import Client

    name = unique("console/multi")
    oci = Client(console_server)
    children = [oci.push_image(name, None) for _ in range(2)]
    index = oci.push_index(name, "multi", children)
    sbom, _ = oci.push_artifact(name, children[0], "application/spdx+json")
    visitor = signed_in(console_server)
    page = visitor.get(f"repository?name={name}")
    assert page.status_code == 200
    assert "linux/amd64" in page.text and "linux/arm64" in page.text
    assert page.text.count(">untagged<") >= 2
    untagged = visitor.get(f"repository?name={name}&status=UNTAGGED")
    assert index.digest[:19] not in untagged.text
    assert children[0].digest[:19] in untagged.text
    image = visitor.get(f"image?name={name}&digest={children[0].digest}")
    assert image.status_code == 200
    assert sbom.digest[:19] in image.text and "application/spdx+json" in image.text
    indexed = visitor.get(f"image?name={name}&digest={index.digest}")
    assert indexed.status_code == 200
    assert "linux/arm64" in indexed.text and 'id="config-json"' not in indexed.text
