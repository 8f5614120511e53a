"""Encrypted vs plain blobs through a running registry's `/v2/` (issue 13), end to end.

    python3 -m benchmarks.encrypted_registry --url http://127.0.0.1:5000 --data-dir DIR
        [--size-mib 64] [--downloads 5]

Creates a KMS key (boto3), an AES256 and a KMS repository, pushes one random blob into each
(`POST ?digest=`, requests; with `--chunked`, `POST` then one `PATCH` with the body then
`PUT ?digest=`, as docker and podman push, so a KMS push is staged as the blob's final
encrypted segments) and downloads it `--downloads` times with `curl` (so the client
is not the bottleneck), printing MiB/s (best run) as JSON. The administrator's credentials
are read from the data directory. With `--worker-pid` (the serving worker), the worker's CPU
time per phase is read from /proc too, as MiB per CPU second: on a machine shared with other
work that is the steadier figure. Nothing asserts: docs/kms.md records the figures.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import shutil
import subprocess
import time

import boto3
import requests


def _curl_seconds(url: str, auth: tuple[str, str]) -> float:
    curl = shutil.which("curl") or "curl"
    out = subprocess.run(
        [curl, "-s", "-o", "/dev/null", "-u", ":".join(auth), "-w", "%{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (0 without a pid)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _push_chunked(url: str, repo: str, digest: str, blob: bytes, auth: tuple[str, str]) -> None:
    started = requests.post(f"{url}/v2/{repo}/blobs/uploads/", auth=auth)
    started.raise_for_status()
    location = started.headers["Location"]
    location = location if location.startswith("http") else url + location
    patched = requests.patch(
        location,
        data=blob,
        auth=auth,
        headers={"Content-Type": "application/octet-stream"},
    )
    patched.raise_for_status()
    location = patched.headers["Location"]
    location = location if location.startswith("http") else url + location
    separator = "&" if "?" in location else "?"
    done = requests.put(f"{location}{separator}digest={digest}", auth=auth)
    done.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--worker-pid", type=int)
    parser.add_argument("--chunked", action="store_true")
    args = parser.parse_args()

    config = configparser.ConfigParser()
    config.read(os.path.join(args.data_dir, "admin-credentials"))
    auth = (config["default"]["aws_access_key_id"], config["default"]["aws_secret_access_key"])
    aws = {
        "endpoint_url": args.url,
        "region_name": "us-east-1",
        "aws_access_key_id": auth[0],
        "aws_secret_access_key": auth[1],
    }
    ecr, kms = boto3.client("ecr", **aws), boto3.client("kms", **aws)
    key_id = kms.create_key(Description="benchmark")["KeyMetadata"]["KeyId"]
    suffix = os.urandom(3).hex()
    repos = {"plain": f"bench/plain-{suffix}", "kms": f"bench/kms-{suffix}"}
    ecr.create_repository(repositoryName=repos["plain"])
    ecr.create_repository(
        repositoryName=repos["kms"],
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key_id},
    )
    blob = os.urandom(args.size_mib * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    results: dict[str, dict[str, float]] = {}
    pid = args.worker_pid
    for name, repo in repos.items():
        started, cpu = time.perf_counter(), _cpu_seconds(pid)
        if args.chunked:
            _push_chunked(args.url, repo, digest, blob, auth)
        else:
            pushed = requests.post(
                f"{args.url}/v2/{repo}/blobs/uploads/?digest={digest}", data=blob, auth=auth
            )
            pushed.raise_for_status()
        upload, upload_cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu
        url = f"{args.url}/v2/{repo}/blobs/{digest}"
        cpu = _cpu_seconds(pid)
        best = min(_curl_seconds(url, auth) for _ in range(args.downloads))
        download_cpu = (_cpu_seconds(pid) - cpu) / args.downloads
        results[name] = {
            "upload_mib_s": round(args.size_mib / upload, 1),
            "download_mib_s": round(args.size_mib / best, 1),
        }
        if pid is not None:
            results[name]["upload_mib_per_cpu_s"] = round(args.size_mib / upload_cpu, 1)
            results[name]["download_mib_per_cpu_s"] = round(args.size_mib / download_cpu, 1)
    results["ratio"] = {
        k: round(results["kms"][k] / results["plain"][k], 2) for k in results["plain"]
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
