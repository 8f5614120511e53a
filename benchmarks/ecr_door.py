"""The ECR door's own CPU per call, in one process (issue 19, stop 26).

`python3 -m benchmarks.ecr_door [--quick] [--only OPS] [--out FILE.json]` seeds a data dir
through a real `cargobay serve` (one image, as `benchmarks.ecr_api` does), stops it, builds the
same `Services` here and calls `ecr.api.handle` with SigV4-signed requests (the same bytes wrk
replays) made by aiohttp's test helper: the door, SigV4, the input shape, the one statement,
the action and the answer, with the audit records flushed as the server flushes them. Not
timed: aiohttp's parsing and writing. CPU microseconds per call (process time, so others' load
moves it less than wall time), best of a few rounds; compare trees by running it with each on
PYTHONPATH, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import ecr_api, ecr_writes
from benchmarks.ecr_api_parts import _seed

OPERATIONS = ("GetDownloadUrlForLayer", "BatchGetImage", "BatchCheckLayerAvailability")
HOST = "127.0.0.1:5000"


class _Protocol:
    """What an aiohttp StreamReader asks of its protocol."""

    _reading_paused = False
    connected = True

    def pause_reading(self, **_: object) -> None:
        pass

    def resume_reading(self, **_: object) -> None:
        pass


async def _measure(
    data_dir: Path, creds: tuple[str, str], layer: str, n: int, operations: list[str]
) -> dict[str, float]:
    from aiohttp import streams
    from aiohttp.test_utils import make_mocked_request

    import cargobay.app
    from cargobay.config import load_settings
    from cargobay.ecr import api
    from cargobay.registry.services import Services

    cargobay.app._load_aws_doors()  # the ECR actions, as a worker's first call loads them
    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    services = Services.build(settings)
    loop = asyncio.get_running_loop()
    protocol = _Protocol()
    results: dict[str, float] = {}
    try:
        for operation in operations:
            body = ecr_api._bodies("v1", layer)[operation]
            data, signed = ecr_writes.sign(f"http://{HOST}", operation, body, creds)
            headers = {**signed, "Content-Length": str(len(data)), "Host": HOST}

            def request(data: bytes = data, headers: dict[str, str] = headers) -> Any:
                payload = streams.StreamReader(protocol, 2**16, loop=loop)  # type: ignore[arg-type]
                payload.feed_data(data)
                payload.feed_eof()
                return make_mocked_request("POST", "/", headers=headers, payload=payload)

            answer = await api.handle(request(), services)
            assert answer.status == 200, (operation, answer.body)
            best = float("inf")
            for _ in range(3):
                requests = [request() for _ in range(n)]
                gc.collect()
                start = time.process_time()
                for i, one in enumerate(requests):
                    await api.handle(one, services)
                    if i % 100 == 99:  # let the audit buffer flush, as the server's loop does
                        await asyncio.sleep(0.001)
                best = min(best, (time.process_time() - start) / n)
            results[operation] = round(best * 1e6, 1)
    finally:
        await services.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (seconds)")
    parser.add_argument("--only", help="comma-separated operations", default=",".join(OPERATIONS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    operations = [op for op in args.only.split(",") if op]
    with tempfile.TemporaryDirectory(prefix="cargobay-ecr-door-") as tmp:
        data_dir, creds, layer = _seed(Path(tmp))
        results = asyncio.run(
            _measure(data_dir, creds, layer, 100 if args.quick else 3000, operations)
        )
    for operation, us in results.items():
        print(f"{operation:<30} {us:8.1f} us of CPU per call (ecr.api.handle)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
