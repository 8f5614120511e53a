"""What one PostgreSQL primary feeds: the capacity model of docs/deploy.md, measured.

`python3 -m benchmarks.pg_capacity [--seconds S]` starts a private PostgreSQL cluster
(tests/pgcluster.py) and `cargobay serve` on it, then for each request of the main mix
(manifest GET by tag, blob GET, manifest PUT, the ECR reads) measures, robustly on a shared
machine, CPU time rather than wall time:

- the database statements per request (`X-Cargobay-Db-Statements`);
- the PostgreSQL server's CPU per request (utime+stime of the postmaster and its backends);
- cargobay's own CPU per request (its worker tree), on the PostgreSQL path;

and, with pgbench, the statements/s the cluster sustains for the manifest GET's one statement.
One primary of P cores then serves P / (PostgreSQL CPU per request) requests/s of that kind,
and feeds (cargobay CPU per request) / (PostgreSQL CPU per request) x P / N nodes of N cores.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from benchmarks import client as cl
from benchmarks.registries import Cargobay
from benchmarks.scenarios import _PUT_LUA, _push_small_image, _wrk_headers, run_wrk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pgcluster

HEADER = "X-Cargobay-Db-Statements"
REPO = "capacity/app"


def _ticks(pid: int, children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    ticks = int(fields[11]) + int(fields[12])
    if children:  # backends that exited and were waited for
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def tree_cpu(root: int, reaped: bool = False) -> float:
    """CPU seconds of `root` and its live children (and, with `reaped`, its dead ones)."""
    ticks = _ticks(root, reaped) + sum(_ticks(p) for p in _children(root))
    return ticks / os.sysconf("SC_CLK_TCK")


def backends_cpu(cluster: pgcluster.Cluster, database: str) -> dict[int, float]:
    """CPU seconds of each client backend connected to `database`: the work the requests
    cause, without the cluster's background processes (which a shared machine's other load
    and autovacuum make noisy). A backend that exits mid-run takes its CPU with it, so the
    pools' connections must stay open (the hot lookups' pool has no overflow)."""
    pids = cluster.psql(
        f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}' "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).split()
    return {int(p): _ticks(int(p)) / os.sysconf("SC_CLK_TCK") for p in pids}


class Meter:
    """CPU per request of PostgreSQL's client backends and of cargobay over one block."""

    def __init__(self, cluster: pgcluster.Cluster, database: str, cargobay: int) -> None:
        self.cluster, self.database, self.cargobay = cluster, database, cargobay
        self.idle_pg = self.idle_cb = 0.0  # CPU seconds per second with no requests

    def calibrate(self, seconds: float) -> None:
        """Measure the idle CPU (PostgreSQL's background processes, cargobay's timers), which
        every block then subtracts: under load, few requests would carry all of it."""
        with self:
            time.sleep(seconds)
        self.idle_pg, self.idle_cb = self.pg / self.wall, self.cb / self.wall

    def __enter__(self) -> Meter:
        self.t0 = time.monotonic()
        self.pg0 = backends_cpu(self.cluster, self.database)
        self.cb0 = tree_cpu(self.cargobay)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.wall = time.monotonic() - self.t0
        pg1 = backends_cpu(self.cluster, self.database)
        used = sum(cpu - self.pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        self.pg = used - self.idle_pg * self.wall
        self.cb = tree_cpu(self.cargobay) - self.cb0 - self.idle_cb * self.wall

    def per_request(self, requests: int) -> dict[str, float]:
        return {
            "requests": requests,
            "pg_cpu_us": round(self.pg / requests * 1e6, 1),
            "cargobay_cpu_us": round(self.cb / requests * 1e6, 1),
        }


def _postmaster(cluster: pgcluster.Cluster) -> int:
    assert cluster.root is not None
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


def _statements(registry: Cargobay, method: str, path: str, **headers: str) -> int:
    """The statements of a warm request: the least of three after one that fills caches."""
    import requests

    session = requests.Session()
    session.auth = registry.auth
    counts = []
    for _ in range(4):
        response = session.request(method, registry.url + path, headers=headers, timeout=60)
        response.raise_for_status()
        counts.append(int(response.headers[HEADER]))
    return min(counts[1:])


def _wrk(registry: Cargobay, meter: Meter, args: list[str], seconds: int) -> dict[str, float]:
    with meter:
        result = run_wrk(["-t2", "-c16", f"-d{seconds}s", *args], seconds + 60)
    return {**meter.per_request(result["requests"]), "rps": result["rps"]}


def _ecr(registry: Cargobay) -> Any:
    key, secret = registry.auth or ("", "")
    return boto3.client(
        "ecr",
        endpoint_url=registry.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def pgbench_lookup(
    cluster: pgcluster.Cluster, database: str, account: str, seconds: int
) -> tuple[float, float]:
    """Statements/s the cluster sustains for the manifest GET's one statement (pgbench,
    prepared, 4 clients on 2 threads; the client shares the machine), for the image pushed
    above, and the PostgreSQL CPU per statement (µs) over that run."""
    from sqlalchemy.dialects import postgresql

    from cargobay.metadata.records.pulls import _STATEMENTS

    statement = _STATEMENTS[(False, False)].statement.params(
        registry_id=account,
        region="",  # the default region's key: without it the statement finds nothing
        name=REPO,
        reference="latest",
        caller_account=account,
        caller="admin",
        caller_key="AKIAXXXXXXXXXXXXXXXX",
    )
    sql = str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(" ".join(sql.split()) + ";\n")
    url = cluster.url(database)
    postmaster = _postmaster(cluster)
    cpu0 = tree_cpu(postmaster, reaped=True)
    out = subprocess.run(
        [
            str(cluster.bin_dir / "pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c4",
            "-j2",
            f"-T{seconds}",
            "-f",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    time.sleep(1)  # the postmaster reaps pgbench's backends (and counts their CPU) first
    cpu = tree_cpu(postmaster, reaped=True) - cpu0
    done = int(re.search(r"transactions actually processed: (\d+)", out).group(1))
    return float(re.search(r"tps = ([\d.]+)", out).group(1)), cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    # CPU times come from /proc in 10 ms ticks: 200 calls of ~0.35 ms of PostgreSQL CPU were
    # ~7 ticks, so one tick moved a figure by 14 % (three reads printed the same 345.0 µs).
    parser.add_argument("--ecr-calls", type=int, default=1000)
    args = parser.parse_args()
    cluster = pgcluster.Cluster.start()
    workdir = Path(tempfile.mkdtemp(prefix="cargobay-capacity-"))
    database = cluster.database_for(workdir)
    os.environ.update(
        CARGOBAY_DATABASE=cluster.url(database),
        CARGOBAY_AUTO_UPGRADE="true",
        CARGOBAY_COUNT_DB_STATEMENTS="true",
        CARGOBAY_JOBS_ENABLED="false",
    )
    registry = Cargobay(workdir, 60).start()
    try:
        with cl.Client(registry) as c:
            image = _push_small_image(c, REPO, "latest", 1024)
        layer = cl.sha256(image.layers[0])
        meter = Meter(cluster, database, registry.pid)
        meter.calibrate(args.seconds)
        accept = {"Accept": cl.OCI_MANIFEST}
        results: dict[str, dict[str, float]] = {}
        results["manifest GET by tag"] = {
            "statements": _statements(registry, "GET", f"/v2/{REPO}/manifests/latest", **accept),
            **_wrk(
                registry,
                meter,
                [*_wrk_headers(registry, accept), f"{registry.url}/v2/{REPO}/manifests/latest"],
                args.seconds,
            ),
        }
        results["blob GET (1 KiB)"] = {
            "statements": _statements(registry, "GET", f"/v2/{REPO}/blobs/{layer}"),
            **_wrk(
                registry,
                meter,
                [*_wrk_headers(registry, {}), f"{registry.url}/v2/{REPO}/blobs/{layer}"],
                args.seconds,
            ),
        }
        template = cl.manifest_for(image.config, image.layers, {"bench.tag": "%s"}).decode()
        script = workdir / "put.lua"
        script.write_text(
            _PUT_LUA.replace("REPO", REPO).replace("TEMPLATE", template).replace("PREFIX", "cap")
        )
        results["manifest PUT"] = _wrk(
            registry,
            meter,
            [
                "-s",
                str(script),
                *_wrk_headers(registry, {"Content-Type": cl.OCI_MANIFEST}),
                registry.url,
            ],
            args.seconds,
        )
        ecr = _ecr(registry)
        image_ids = {"repositoryName": REPO, "imageIds": [{"imageTag": "latest"}]}
        for operation, call in (
            ("BatchGetImage", lambda: ecr.batch_get_image(**image_ids)),
            ("DescribeImages", lambda: ecr.describe_images(**image_ids)),
            (
                "GetDownloadUrlForLayer",
                lambda: ecr.get_download_url_for_layer(repositoryName=REPO, layerDigest=layer),
            ),
            (
                "BatchCheckLayerAvailability",
                lambda: ecr.batch_check_layer_availability(
                    repositoryName=REPO, layerDigests=[layer]
                ),
            ),
        ):
            call()
            with meter:
                for _ in range(args.ecr_calls):
                    response = call()
            statements = int(response["ResponseMetadata"]["HTTPHeaders"][HEADER.lower()])
            results[operation] = {"statements": statements, **meter.per_request(args.ecr_calls)}
        account = registry_account(registry)
        lookups, lookup_cpu = pgbench_lookup(cluster, database, account, args.seconds)
    finally:
        registry.stop()
        cluster.stop()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(
        f"idle CPU subtracted: PostgreSQL {meter.idle_pg * 1e3:.1f} ms/s, "
        f"cargobay {meter.idle_cb * 1e3:.1f} ms/s"
    )
    print(f"{'request':32} {'stmts':>5} {'PG CPU us':>10} {'cargobay CPU us':>16} {'rps':>8}")
    for name, row in results.items():
        print(
            f"{name:32} {row.get('statements', '-'):>5} {row['pg_cpu_us']:>10} "
            f"{row['cargobay_cpu_us']:>16} {row.get('rps', '-'):>8}"
        )
    print(
        f"pgbench, the manifest GET statement alone: {lookups:,.0f} statements/s, "
        f"{lookup_cpu:.0f} us of PostgreSQL CPU each"
    )
    get = results["manifest GET by tag"]
    print(
        "one PostgreSQL core feeds "
        f"{1e6 / get['pg_cpu_us']:,.0f} manifest GETs/s, i.e. the cargobay CPU of "
        f"{get['cargobay_cpu_us'] / get['pg_cpu_us']:.1f} cores serving them"
    )


def registry_account(registry: Cargobay) -> str:
    """The account the administrator's registry is (its repositoryUri's host)."""
    repos = _ecr(registry).describe_repositories(repositoryNames=[REPO])["repositories"]
    return repos[0]["registryId"]


if __name__ == "__main__":
    main()
