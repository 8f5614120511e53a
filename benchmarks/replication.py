"""Replication between two deployments on this machine, against `skopeo copy` between them.

    python3 -m benchmarks.replication [--size-mib 1024] [--layers 8]

Starts A (us-east-1, replicating `bench/` to eu-west-1) and B (eu-west-1), pushes an image of
`--size-mib` random bytes in `--layers` layers to A with skopeo, and times from the end of the
push until A reports COMPLETE for B. Then times `skopeo copy` of the same image from A to a new
repository in B (what a user would do by hand), and prints the ratio (target: replication no
slower than 1.2x the copy). Last, pushes a second image that shares all but one layer with the
first and reads from A's log how many bytes that replication sent (target: only the new layer
and config).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from benchmarks.registries import Cargobay

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from imagebuilder import _write_blob, build_image, sha256


class Region(Cargobay):
    """A cargobay deployment with extra environment (its region, the regions it knows)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(workdir, 60.0)
        self.env = env

    def command(self) -> list[str]:
        return ["env", *(f"{k}={v}" for k, v in self.env.items()), *super().command()]


def _skopeo(*args: str) -> float:
    started = time.monotonic()
    subprocess.run(["skopeo", *args], check=True, capture_output=True)
    return time.monotonic() - started


def _wait_complete(ecr, name: str, tag: str, timeout: float = 3600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        statuses = ecr.describe_image_replication_status(
            repositoryName=name, imageId={"imageTag": tag}
        )["replicationStatuses"]
        if statuses and all(s["status"] == "COMPLETE" for s in statuses):
            return time.monotonic() - started
        if any(s["status"] == "FAILED" for s in statuses):
            raise RuntimeError(f"replication failed: {statuses}")
        time.sleep(0.05)
    raise RuntimeError("replication did not complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cargobay-repl-bench-") as tmp:
        work = Path(tmp)
        (work / "a").mkdir()
        (work / "b").mkdir()
        b = Region(work / "b", {"CARGOBAY_REGION": "eu-west-1"}).start()
        key, secret = b.auth
        regions = {
            "eu-west-1": {"endpoint": b.url, "access_key_id": key, "secret_access_key": secret}
        }
        a = Region(
            work / "a",
            {"CARGOBAY_REGIONS": json.dumps(regions), "CARGOBAY_TASKS_TICK_SECONDS": "1"},
        ).start()
        try:
            akey, asecret = a.auth
            ecr = boto3.client(
                "ecr", endpoint_url=a.url, region_name="us-east-1",
                aws_access_key_id=akey, aws_secret_access_key=asecret,
            )  # fmt: skip
            ecr.put_replication_configuration(
                replicationConfiguration={
                    "rules": [
                        {
                            "destinations": [{"region": "eu-west-1", "registryId": "000000000000"}],
                            "repositoryFilters": [
                                {"filter": "bench/", "filterType": "PREFIX_MATCH"}
                            ],
                        }
                    ]
                }
            )
            layer = args.size_mib * 1024 * 1024 // args.layers
            image = build_image(work / "img", [layer] * args.layers)
            a_creds, b_creds = ":".join(a.auth), ":".join(b.auth)
            push = _skopeo(
                "copy", "--dest-tls-verify=false", "--dest-creds", a_creds,
                f"oci:{image.layout}:latest", f"docker://{a.host}/bench/app:1",
            )  # fmt: skip
            replication = _wait_complete(ecr, "bench/app", "1")
            copy = _skopeo(
                "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                "--src-creds", a_creds, "--dest-creds", b_creds,
                f"docker://{a.host}/bench/app:1", f"docker://{b.host}/manual/app:1",
            )  # fmt: skip
            total = sum(len(blob) for blob in image.blobs.values())
            print(f"image: {total / 2**20:.0f} MiB in {args.layers} layers; push to A {push:.2f} s")
            print(f"replication A->B after the push: {replication:.2f} s")
            print(f"skopeo copy A->B:                {copy:.2f} s")
            print(f"ratio replication/copy: {replication / copy:.2f}x (target <= 1.2x)")

            # A second image sharing every layer but one: only the new bytes travel.
            layout = work / "img2"
            second = build_image(layout, [layer])
            for blob in image.layers:
                _write_blob(layout, blob)
            manifest = json.loads(second.manifest)
            media = manifest["layers"][0]["mediaType"]
            manifest["layers"] = [
                {"mediaType": media, "digest": sha256(b), "size": len(b)} for b in image.layers[1:]
            ] + manifest["layers"]
            content = json.dumps(manifest).encode()
            digest = _write_blob(layout, content)
            index = json.loads((layout / "index.json").read_text())
            index["manifests"][0].update(digest=digest, size=len(content))
            (layout / "index.json").write_text(json.dumps(index))
            _skopeo(
                "copy", "--dest-tls-verify=false", "--dest-creds", a_creds,
                f"oci:{layout}:latest", f"docker://{a.host}/bench/app:2",
            )  # fmt: skip
            _wait_complete(ecr, "bench/app", "2")
            sent = [
                int(m.group(1))
                for m in re.finditer(r"bench/app@" + re.escape(digest) + r".*?\((\d+) bytes sent\)",
                                     a.log_path.read_text())
            ]  # fmt: skip
            new = len(second.layers[0]) + len(second.config)
            shared = sum(len(b) for b in image.layers[1:])
            print(
                f"second image: {(shared + new) / 2**20:.0f} MiB, of which new {new / 2**20:.1f} "
                f"MiB; replication sent {sent[-1] / 2**20 if sent else float('nan'):.1f} MiB"
            )
        finally:
            a.stop()
            b.stop()


if __name__ == "__main__":
    main()
