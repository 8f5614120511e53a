"""wrk sending distinct pre-signed requests, each exactly once (the ECR API's writes).

A write cannot be replayed as one request sent again and again, so each request is prepared
and signed beforehand (`benchmarks.ecr_writes`) and written, as the HTTP bytes wrk sends, to
one share file per wrk thread (every other request: the threads' shares are disjoint).
`replay.lua` loads its thread's share, holds every thread until all have loaded theirs, hands
each request out once and stops the thread at its last answer; the last thread to stop ends
wrk's run. So wrk's own count, rate and latency percentiles cover exactly those requests, on
the same 2 threads and 32 connections as the reads' runs. The script counts the answers
outside 2xx itself (wrk counts only those above 399), and a run with any is an error.
"""

from __future__ import annotations

import re
import resource
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.scenarios import ScenarioError, parse_wrk, wrk_output

THREADS = 2
CONNECTIONS = 32
METHOD = "wrk -t2 -c32, each distinct request once"
SCRIPT = Path(__file__).with_name("replay.lua")

Signed = tuple[bytes, dict[str, str]]


def http_bytes(url: str, request: Signed) -> bytes:
    """A signed ECR request as wrk sends it: `POST /`, the signed headers, its body."""
    body, headers = request
    lines = ["POST / HTTP/1.1", f"Host: {urlsplit(url).netloc}"]
    lines += [f"{name}: {text}" for name, text in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def write_shares(url: str, requests: list[Signed], prefix: Path, threads: int) -> None:
    """`<prefix>.<i>` for thread i (from 1): a line of lengths, then the requests' bytes."""
    if len(requests) < threads:
        raise ValueError(f"{len(requests)} requests cannot keep {threads} threads busy")
    for i in range(threads):
        share = [http_bytes(url, r) for r in requests[i::threads]]
        with open(f"{prefix}.{i + 1}", "wb") as fh:
            fh.write(" ".join(str(len(r)) for r in share).encode() + b"\n")
            fh.writelines(share)


_REPLAY = re.compile(
    r"replay: share (\d+) sent (\d+) answered (\d+) non2xx (\d+) unasked (\d+)"
    r" load_ms ([\d.]+) peak_kib (\d+)"
)


def replay(
    url: str, requests: list[Signed], prefix: Path, rate: float | None = None
) -> dict[str, Any]:
    """wrk -t2 -c32 sends every request once (at `rate` requests/s in all, or as fast as the
    server answers): wrk's rate, p99 and count, its CPU per request, the slowest thread's load
    time and wrk's peak RSS."""
    write_shares(url, requests, prefix, THREADS)
    period_ms = THREADS * 1000 / rate if rate else 0
    # -d only bounds a run that lost a request (it would then wait for its answer forever).
    seconds = 60 + int(len(requests) // (rate or 50))
    args = [f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(SCRIPT), url + "/"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = wrk_output([*args, "--", str(prefix), str(THREADS), f"{period_ms:.6f}"], seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = _REPLAY.search(out)
    if not match:
        raise ScenarioError(f"the replay script reported nothing:\n{out}")
    share, sent, answered, non2xx, unasked = map(int, match.groups()[:5])
    sockets = re.search(r"Socket errors: .*", out)
    broken = f"; wrk's {sockets.group(0)}" if sockets else ""
    if non2xx:
        first = re.search(r"replay: first non-2xx answer: (.*)", out)
        raise ScenarioError(
            f"{non2xx} of {answered} answers were not 2xx{broken}"
            f" (first: {first and first.group(1)})"
        )
    if unasked or not share == sent == answered == len(requests):
        raise ScenarioError(
            f"{len(requests)} requests: {share} in the shares, {sent} sent, {answered} answered,"
            f" {unasked} connections re-opened mid-request{broken}"
        )
    figures = parse_wrk(out)
    if figures["requests"] != answered:
        raise ScenarioError(f"wrk counted {figures['requests']:.0f} answers, the script {answered}")
    # wrk's own CPU (loading the shares too), on the cores the server uses.
    client_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    figures["client_cpu_us"] = client_s * 1e6 / len(requests)
    figures["method"] = METHOD
    figures["load_ms"] = float(match.group(6))
    figures["wrk_peak_mib"] = int(match.group(7)) / 1024
    if rate:
        figures["rate"] = rate
    return figures
