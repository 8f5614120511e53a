"""Where a SigV4 verification's time goes: key derivation, canonical request, secret lookup.

`python3 -m benchmarks.sigv4_micro` signs one ECR request with botocore, then times, per call:
the whole `sigv4.verify` with the secret in memory, the signing-key derivation alone (four
HMAC-SHA256s), botocore's canonical request and string to sign alone, and the access-key lookup
(`CredentialStore.lookup`: one database read, plus opening the sealed secret the first time) on
a fresh SQLite data dir. Figures are microseconds per call, best of a few rounds (the machine
is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cargobay.iam import sigv4

KEY_ID = "AKIAEXAMPLEKEY000001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BODY = b'{"repositoryName": "bench/app", "imageIds": [{"imageTag": "latest"}]}'
TARGET = "AmazonEC2ContainerRegistry_V20150921.BatchGetImage"


def _signed() -> tuple[str, str, str, dict[str, str], datetime]:
    headers = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
    request = AWSRequest(method="POST", url="http://127.0.0.1:5000/", data=BODY, headers=headers)
    SigV4Auth(Credentials(KEY_ID, SECRET), "ecr", "us-east-1").add_auth(request)
    prepared = request.prepare()
    wire = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    wire["Host"] = "127.0.0.1:5000"
    return "POST", "/", "", wire, datetime.now(UTC)


def _best_us(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return round(best * 1e6, 2)


async def _best_us_async(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, (time.perf_counter() - start) / n)
    return round(best * 1e6, 2)


def _derive(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


async def _lookup_us(n: int) -> float:
    from cargobay.config import load_settings
    from cargobay.iam.credentials import CredentialStore
    from cargobay.iam.secrets import load_box
    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={"data_dir": Path(tmp)}, environ={})
        await migrations.ensure(settings.database_url, upgrade_schema=True)
        db = Database(settings.database_url)
        try:
            store = CredentialStore(db, load_box(settings.secret_key, settings.data_dir))
            user = await store.create_user("000000000000", "bench", is_admin=True)
            await store.add_access_key(user, KEY_ID, SECRET)
            await store.lookup(KEY_ID)
            return await _best_us_async(lambda: store.lookup(KEY_ID), n)
        finally:
            await db.dispose()


async def _measure(n: int) -> dict[str, float]:
    method, path, query, headers, now = _signed()

    async def secret_for(_key_id: str) -> str:
        return SECRET

    async def verify() -> object:
        return await sigv4.verify(method, path, query, headers, BODY, secret_for, now=now)

    ts = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials(KEY_ID, SECRET), "ecr", "us-east-1")
    request = AWSRequest(method="POST", url="https://verifier.invalid/", data=BODY, headers=headers)
    request.context["timestamp"] = ts

    def canonical() -> object:
        return signer.string_to_sign(request, signer.canonical_request(request))

    return {
        "verify_total_us": await _best_us_async(verify, n),
        "key_derivation_us": _best_us(lambda: _derive(SECRET, ts[:8], "us-east-1", "ecr"), n),
        "botocore_canonical_request_us": _best_us(canonical, n),
        "body_sha256_us": _best_us(lambda: hashlib.sha256(BODY).hexdigest(), n),
        "secret_lookup_us": await _lookup_us(max(200, n // 10)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (seconds)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = asyncio.run(_measure(200 if args.quick else 5000))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
