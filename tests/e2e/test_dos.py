"""Issue 11's denial of service, replayed against a real server: a low-privilege user sets a
repository policy whose Resource is a wildcard pattern that a backtracking matcher needs hours
for, then hammers the repository. Every worker used to spin; now the other account's pulls,
`/healthz` and the administrator's DeleteRepositoryPolicy keep working."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from e2e.ecrhelp import ACCOUNT, client, make_user, pull, push
from imagebuilder import build_image
from server import Server

OTHER_ACCOUNT = "111111111111"
REPO = "a" * 247  # the 247-character repository name
EVIL = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*a*a*a*a*a*a*b"
# Generous bounds on each request so a hung server fails the test instead of hanging it; the
# backtracking engine needed 5.3 s with 4 stars and about x50 per extra star (this has 7).
TIMEOUT = 60


@pytest.fixture
def server(tmp_path: Path):
    srv = Server(tmp_path / "data").start()
    yield srv
    srv.discard()


def test_wildcard_policy_does_not_take_the_registry_down(server: Server, tmp_path: Path) -> None:
    image = build_image(tmp_path / "img", [2000])
    admin = client(server)
    admin.create_repository(repositoryName=REPO)
    arn = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPO}"
    own_repo = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ecr:SetRepositoryPolicy", "ecr:BatchGetImage", "ecr:ListImages"],
                "Resource": arn,
            }
        ],
    }
    mallory = make_user(server, "mallory", own_repo, tmp=tmp_path)
    bob_key, bob_secret = make_user(server, "bob", account=OTHER_ACCOUNT, is_admin=True)
    bob_creds = f"{bob_key}:{bob_secret}"
    push(server, image, "bob/app:1", creds=bob_creds)

    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Resource": EVIL}],
    }
    client(server, *mallory).set_repository_policy(repositoryName=REPO, policyText=json.dumps(deny))

    stop = threading.Event()
    pulls: list[int] = []
    health: list[int] = []

    def bob_pulls() -> None:
        n = 0
        while not stop.is_set() or n == 0:
            proc = pull(server, "bob/app:1", tmp_path / f"pull-{n}", creds=bob_creds, check=False)
            pulls.append(proc.returncode)
            health.append(requests.get(f"{server.url}/healthz", timeout=TIMEOUT).status_code)
            n += 1

    def attack(i: int) -> int:
        url = (
            f"{server.url}/v2/{REPO}/manifests/x{i}"
            if i % 2
            else f"{server.url}/v2/{REPO}/tags/list"
        )
        return requests.get(url, auth=mallory, timeout=TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=21) as pool:
        victim = pool.submit(bob_pulls)
        statuses = list(pool.map(attack, range(20)))
        stop.set()
        victim.result(timeout=TIMEOUT * 4)

    # The Deny does not match the name (no trailing b), so mallory's own rights apply.
    assert all(status in (200, 404) for status in statuses), statuses
    assert pulls and all(code == 0 for code in pulls), pulls
    assert health and all(code == 200 for code in health), health
    admin.delete_repository_policy(repositoryName=REPO)
    with pytest.raises(admin.exceptions.RepositoryPolicyNotFoundException):
        admin.get_repository_policy(repositoryName=REPO)
