"""Manifest PUT throughput with webhooks and the audit trail on against off (issue 16's target:
at least 0.9x).

    python3 -m benchmarks.events_audit [--seconds 5] [--connections 8] [--reps 3] [--out F.json]

Starts two `cargobay serve` instances on their embedded defaults: "off" with `audit_enabled =
false` and no webhook, "on" with the audit trail (buffered, the default) and one webhook that
receives every event, delivered to a local receiver during the run. Both run scenario 6 of
benchmarks.run (wrk PUTs distinct small manifests over the same blobs), repetitions interleaved;
the figure is the ratio of the medians. As in benchmarks.run, the order rotates between
repetitions and each timed run starts after `sync`. Every push writes its outbox event row in
both set-ups (events are always recorded); "on" adds the webhook's delivery row, its delivery,
and the audit record. `--split` also measures audit only and webhooks only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.config import Knobs
from benchmarks.registries import Cargobay
from benchmarks.scenarios import Context, ManifestPut


class Configured(Cargobay):
    """`cargobay serve --config <file>`, named so the scenario's files do not collide."""

    def __init__(self, workdir: Path, name: str, config: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        super().__init__(workdir, start_timeout=60.0)
        self.config = workdir / "cargobay.toml"
        self.config.write_text(config)

    def command(self) -> list[str]:
        return [*super().command(), "--config", str(self.config)]


def receiver() -> tuple[ThreadingHTTPServer, list[int]]:
    """A webhook endpoint that accepts everything and counts what it got."""
    received = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver behind a proxy has

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received[0] += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--split", action="store_true", help="also run audit-only and webhook-only set-ups"
    )
    args = parser.parse_args()
    knobs = Knobs(put_seconds=args.seconds, put_connections=args.connections)
    httpd, received = receiver()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    scenario = ManifestPut()
    webhook = f'[[webhooks]]\nurl = "{url}"\nsecret = "benchmark-webhook-secret"\n'
    configs = {
        "off": "audit_enabled = false\n",
        "on": f"audit_enabled = true\nwebhook_poll_seconds = 1\n\n{webhook}",
    }
    if args.split:
        configs["audit"] = "audit_enabled = true\n"
        configs["webhook"] = f"audit_enabled = false\nwebhook_poll_seconds = 1\n\n{webhook}"
    results: dict[str, list[float]] = {key: [] for key in configs}
    with tempfile.TemporaryDirectory(prefix="cargobay-bench-events-") as tmp:
        work = Path(tmp)
        registries = {
            key: Configured(work / key, f"cargobay-{key}", text) for key, text in configs.items()
        }
        ctx = Context(knobs=knobs, workdir=work)
        try:
            for registry in registries.values():
                registry.start()
                scenario.setup(ctx, registry)
            keys = list(registries)
            for rep in range(args.reps):
                # The order rotates between repetitions, and every timed run starts with no
                # dirty pages and the others' background work (deliveries, flushes) done.
                for key in keys[rep % len(keys) :] + keys[: rep % len(keys)]:
                    registry = registries[key]
                    os.sync()
                    time.sleep(2)
                    result = scenario.run(ctx, registry, rep)
                    results[key].append(result["images_s"])
                    print(f"rep {rep + 1} {key:>7}: {result['images_s']:8.1f} manifests/s")
        finally:
            for registry in registries.values():
                registry.stop()
            httpd.shutdown()
    medians = {key: statistics.median(values) for key, values in results.items()}
    off, on = medians["off"], medians["on"]
    summary = {
        "medians": medians,
        "off_images_s": off,
        "on_images_s": on,
        "ratio": on / off,
        "runs": results,
        "webhook_deliveries_received": received[0],
        "knobs": {"seconds": args.seconds, "connections": args.connections, "reps": args.reps},
    }
    print(f"manifest PUT: off {off:.1f}/s, on {on:.1f}/s, ratio {on / off:.2f}x (target >= 0.9x)")
    for key in configs:
        if key not in ("off", "on"):
            print(f"  {key} only: {medians[key]:.1f}/s, ratio {medians[key] / off:.2f}x")
    print(f"webhook deliveries received: {received[0]}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
