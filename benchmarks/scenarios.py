"""The benchmark scenarios. Each runs the same client against both registries; a scenario may
prepare shared inputs once per repetition (`prepare_rep`) and seed a registry once (`setup`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks import client as cl
from benchmarks.config import Knobs, MiB
from benchmarks.registries import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from imagebuilder import build_image


class ScenarioError(RuntimeError):
    pass


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"


@dataclass
class Context:
    knobs: Knobs
    workdir: Path
    # Inputs shared by both registries within one repetition.
    shared: dict[str, object] = field(default_factory=dict)


class Scenario:
    key = ""
    title = ""
    metrics: tuple[Metric, ...] = ()
    # Uploads: start each timed run from the same page-cache state (see run.py).
    fresh_page_cache = False

    def setup(self, ctx: Context, registry: Registry) -> None:
        """Seed a registry once, before the repetitions."""

    def inputs(self, ctx: Context) -> list[Path]:
        """Files the client reads during a run, re-read into the page cache before it."""
        return []

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        """Make the inputs of one repetition (outside any timing)."""

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        raise NotImplementedError


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise ScenarioError(
            f"{Path(cmd[0]).name} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}"
        )
    return proc.stdout


def _curl_auth(registry: Registry) -> list[str]:
    return ["-u", ":".join(registry.auth)] if registry.auth else []


def _rewrite_prefix(path: Path, prefix: bytes) -> str:
    """Overwrite the file's first bytes (a distinct blob per repetition); return its digest."""
    with open(path, "r+b") as fh:
        fh.write(prefix)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            block = min(remaining, 16 * MiB)
            fh.write(os.urandom(block))
            remaining -= block


def curl_upload(ctx: Context, registry: Registry, repo: str, path: Path, digest: str) -> float:
    """POST a session, then PUT the whole file with `?digest=` (curl streams it); seconds."""
    started = time.perf_counter()
    with cl.Client(registry) as c:
        location = c.start_upload(repo)
    out = _run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-T",
            str(path),
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            *_curl_auth(registry),
            registry.url + cl.with_query(location, digest=digest),
        ],
        timeout=ctx.knobs.request_timeout,
    )
    elapsed = time.perf_counter() - started
    if out.strip() != "201":
        raise ScenarioError(f"upload answered {out.strip()}")
    return elapsed


# -- 1. blob download --------------------------------------------------------------------------


class BlobDownload(Scenario):
    key = "blob_download"
    title = "1. Blob download (curl)"
    metrics = (Metric("mib_s", "throughput", "MiB/s", "higher"),)
    repo = "bench/download"

    def _blob(self, ctx: Context) -> tuple[Path, str]:
        if "big_file" not in ctx.shared:
            path = ctx.workdir / "big.bin"
            _random_file(path, ctx.knobs.blob_bytes)
            ctx.shared["big_file"] = path
            ctx.shared["download_digest"] = _rewrite_prefix(path, os.urandom(32))
        return ctx.shared["big_file"], ctx.shared["download_digest"]  # type: ignore[return-value]

    def setup(self, ctx: Context, registry: Registry) -> None:
        path, digest = self._blob(ctx)
        curl_upload(ctx, registry, self.repo, path, digest)
        # One untimed download first, on both registries: the figure is a pull of a blob the
        # machine has in its page cache. (cargobay writes uploads with O_DIRECT, so right
        # after the push its blob is on disk only; Distribution's is still cached.)
        self.run(ctx, registry, -1)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        digest = ctx.shared["download_digest"]
        out = _run(
            [
                "curl",
                "-sS",
                "-L",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download} %{time_total}",
                *_curl_auth(registry),
                f"{registry.url}/v2/{self.repo}/blobs/{digest}",
            ],
            timeout=ctx.knobs.request_timeout,
        )
        code, size, seconds = out.split()
        if code != "200" or int(size) != ctx.knobs.blob_bytes:
            raise ScenarioError(f"download answered {code} with {size} bytes")
        return {"mib_s": int(size) / MiB / float(seconds)}


# -- 2. monolithic upload ----------------------------------------------------------------------


class MonolithicUpload(Scenario):
    key = "monolithic_upload"
    title = "2. Monolithic blob upload (POST + PUT ?digest=, curl -T)"
    metrics = (Metric("mib_s", "throughput", "MiB/s", "higher"),)
    fresh_page_cache = True

    def inputs(self, ctx: Context) -> list[Path]:
        return [ctx.shared["big_file"]]  # type: ignore[list-item]

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        path = ctx.shared.get("big_file")
        if path is None:
            path = ctx.workdir / "big.bin"
            _random_file(path, ctx.knobs.blob_bytes)
            ctx.shared["big_file"] = path
        ctx.shared["upload_digest"] = _rewrite_prefix(path, os.urandom(32))  # type: ignore[arg-type]

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        seconds = curl_upload(
            ctx,
            registry,
            f"bench/upload{rep}",
            ctx.shared["big_file"],  # type: ignore[arg-type]
            ctx.shared["upload_digest"],  # type: ignore[arg-type]
        )
        return {"mib_s": ctx.knobs.blob_bytes / MiB / seconds}


# -- 3. chunked upload -------------------------------------------------------------------------


class ChunkedUpload(Scenario):
    key = "chunked_upload"
    title = "3. Chunked upload (PATCH chunks, then PUT ?digest=)"
    metrics = (Metric("mib_s", "throughput", "MiB/s", "higher"),)
    fresh_page_cache = True

    def inputs(self, ctx: Context) -> list[Path]:
        return [ctx.shared["chunked_file"]]  # type: ignore[list-item]

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        path = ctx.workdir / "chunked.bin"
        _random_file(path, ctx.knobs.chunked_bytes)
        ctx.shared["chunked_file"] = path
        ctx.shared["chunked_digest"] = _rewrite_prefix(path, os.urandom(32))

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        # The client runs as its own process, as curl does in scenarios 1-2 (see its docstring).
        root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        if registry.auth:
            env["BENCH_AUTH"] = ":".join(registry.auth)
        out = _run(
            [
                sys.executable,
                "-m",
                "benchmarks.chunked_client",
                str(registry.port),
                f"bench/chunked{rep}",
                str(ctx.shared["chunked_file"]),
                str(ctx.shared["chunked_digest"]),
                str(ctx.knobs.chunk_bytes),
            ],
            timeout=ctx.knobs.request_timeout,
            env=env,
        )
        seconds = json.loads(out)["seconds"]
        return {"mib_s": ctx.knobs.chunked_bytes / MiB / seconds}


# -- 4. skopeo ---------------------------------------------------------------------------------


class Skopeo(Scenario):
    key = "skopeo"
    title = "4. skopeo copy, 5-layer image"
    metrics = (
        Metric("push_s", "push", "s", "lower"),
        Metric("pull_s", "pull", "s", "lower"),
    )

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        # A new image each repetition, so no blob is already present or mountable.
        layout = ctx.workdir / f"skopeo-image-{rep}"
        shutil.rmtree(layout, ignore_errors=True)
        build_image(layout, [ctx.knobs.skopeo_layer_bytes] * ctx.knobs.skopeo_layers)
        ctx.shared["skopeo_layout"] = layout

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise ScenarioError("skopeo is not installed")
        creds = ":".join(registry.auth) if registry.auth else None
        ref = f"docker://{registry.host}/bench/skopeo{rep}:latest"
        push = [skopeo, "copy", "-q", "--dest-tls-verify=false"]
        if creds:
            push += ["--dest-creds", creds]
        started = time.perf_counter()
        _run([*push, f"oci:{ctx.shared['skopeo_layout']}:latest", ref], ctx.knobs.request_timeout)
        push_s = time.perf_counter() - started
        target = ctx.workdir / f"skopeo-pull-{registry.name}-{rep}"
        shutil.rmtree(target, ignore_errors=True)
        pull = [skopeo, "copy", "-q", "--src-tls-verify=false"]
        if creds:
            pull += ["--src-creds", creds]
        started = time.perf_counter()
        _run([*pull, ref, f"oci:{target}:latest"], ctx.knobs.request_timeout)
        pull_s = time.perf_counter() - started
        shutil.rmtree(target, ignore_errors=True)
        return {"push_s": push_s, "pull_s": pull_s}


# -- wrk ---------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ScenarioError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(args: list[str], timeout: float) -> dict[str, float]:
    # A generous timeout: slow answers count in the latency figures, not as socket errors.
    return parse_wrk(wrk_output(args, timeout))


def wrk_output(args: list[str], timeout: float) -> str:
    """wrk's report (`--latency`, a 30 s request timeout) for these arguments."""
    return _run(["wrk", "--latency", "--timeout", "30s", *args], timeout)


def parse_wrk(out: str) -> dict[str, float]:
    """wrk's rate, p99 and count; a ScenarioError if it saw error answers or socket errors."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise ScenarioError(f"cannot read wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    if errors or socket_errors:
        raise ScenarioError(
            f"wrk saw {errors} error responses and {socket_errors} socket errors "
            f"in {total.group(1)} requests"
        )
    return {
        "rps": float(rps.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests": int(total.group(1)),
    }


def wrk_get(
    ctx: Context,
    registry: Registry,
    path: str,
    headers: dict[str, str],
    connections: int | None = None,
) -> dict[str, float]:
    """wrk GETs of one path for `get_seconds` (auth on): its rate and p99."""
    k = ctx.knobs
    result = run_wrk(
        [
            f"-t{k.wrk_threads}",
            f"-c{connections or k.get_connections}",
            f"-d{k.get_seconds}s",
            *_wrk_headers(registry, headers),
            f"{registry.url}{path}",
        ],
        k.get_seconds + 60,
    )
    return {"rps": result["rps"], "p99_ms": result["p99_ms"]}


def _wrk_headers(registry: Registry, extra: dict[str, str]) -> list[str]:
    args = []
    for name, value in {**registry.auth_header, **extra}.items():
        args += ["-H", f"{name}: {value}"]
    return args


def _push_small_image(c: cl.Client, repo: str, tag: str, layer_bytes: int) -> cl.SmallImage:
    image = cl.small_image(layer_bytes, f"{repo}:{tag}")
    c.put_blob(repo, image.config)
    for layer in image.layers:
        c.put_blob(repo, layer)
    c.put_manifest(repo, tag, image.manifest)
    return image


# -- 5. manifest GET ---------------------------------------------------------------------------


_GET_METRICS = (
    Metric("rps", "requests/s", "req/s", "higher"),
    Metric("p99_ms", "p99 latency", "ms", "lower"),
)


class ManifestGet(Scenario):
    key = "manifest_get"
    title = "5. Manifest GET by tag (wrk)"
    metrics = _GET_METRICS
    repo = "bench/get"

    def setup(self, ctx: Context, registry: Registry) -> None:
        with cl.Client(registry) as c:
            _push_small_image(c, self.repo, "latest", 1024)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        path = f"/v2/{self.repo}/manifests/latest"
        return wrk_get(ctx, registry, path, {"Accept": cl.OCI_MANIFEST})


class SmallBlobGet(Scenario):
    """A pull's other small requests: config blobs and small layers, a few KiB each, fetched
    whole (a file response per request, where the manifest GET is answered from memory)."""

    key = "small_blob_get"
    title = "5b. Small blob GET, 4 KiB (wrk)"
    metrics = _GET_METRICS
    repo = "bench/smallblob"

    def setup(self, ctx: Context, registry: Registry) -> None:
        with cl.Client(registry) as c:
            image = _push_small_image(c, self.repo, "latest", 4096)
        ctx.shared[f"small_blob_{registry.name}"] = cl.sha256(image.layers[0])  # random bytes

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        digest = ctx.shared[f"small_blob_{registry.name}"]
        return wrk_get(ctx, registry, f"/v2/{self.repo}/blobs/{digest}", {})


# -- 6. manifest PUT ---------------------------------------------------------------------------

_PUT_LUA = """\
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local template = [==[TEMPLATE]==]
function request()
  counter = counter + 1
  local tag = "PREFIX-" .. tid .. "-" .. counter
  return wrk.format("PUT", "/v2/REPO/manifests/" .. tag, nil, string.format(template, tag))
end
"""


class ManifestPut(Scenario):
    key = "manifest_put"
    title = "6. Manifest PUT of small images (wrk)"
    metrics = (
        Metric("images_s", "images/s", "images/s", "higher"),
        Metric("p99_ms", "p99 latency", "ms", "lower"),
    )
    repo = "bench/put"

    def setup(self, ctx: Context, registry: Registry) -> None:
        with cl.Client(registry) as c:
            image = _push_small_image(c, self.repo, "base", 1024)
        # Every PUT is a distinct manifest (its annotation differs) over the same blobs.
        template = cl.manifest_for(image.config, image.layers, {"bench.tag": "%s"}).decode()
        script = _PUT_LUA.replace("REPO", self.repo).replace("TEMPLATE", template)
        (ctx.workdir / f"put-{registry.name}.lua").write_text(script)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        script = (ctx.workdir / f"put-{registry.name}.lua").read_text()
        path = ctx.workdir / f"put-{registry.name}-{rep}.lua"
        path.write_text(script.replace("PREFIX", f"{registry.name}{rep}"))
        result = run_wrk(
            [
                f"-t{min(k.wrk_threads, k.put_connections)}",
                f"-c{k.put_connections}",
                f"-d{k.put_seconds}s",
                "-s",
                str(path),
                *_wrk_headers(registry, {"Content-Type": cl.OCI_MANIFEST}),
                registry.url,
            ],
            k.put_seconds + 60,
        )
        return {"images_s": result["rps"], "p99_ms": result["p99_ms"]}


# -- 7. listing --------------------------------------------------------------------------------


def _next_link(headers: dict[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), None)
    if not link:
        return None
    match = re.match(r"\s*<([^>]+)>", link)
    return cl.location_path(match.group(1)) if match else None


class Listing(Scenario):
    key = "listing"
    title = "7. tags/list and _catalog"
    metrics = (
        Metric("tags_full_ms", "tags/list, all tags", "ms", "lower"),
        Metric("tags_page_ms", "tags/list?n=PAGE", "ms", "lower"),
        Metric("catalog_full_ms", "_catalog, all repos (following Link)", "ms", "lower"),
        Metric("catalog_page_ms", "_catalog?n=PAGE", "ms", "lower"),
    )
    repo = "bench/tags"

    def setup(self, ctx: Context, registry: Registry) -> None:
        started = time.perf_counter()
        asyncio.run(self._seed(ctx.knobs, registry))
        ctx.shared[f"seed_s_{registry.name}"] = time.perf_counter() - started

    async def _seed(self, k: Knobs, registry: Registry) -> None:
        image = cl.small_image(1024, "listing")
        async with cl.async_session(registry, k.seed_concurrency, k.request_timeout) as session:
            config = await cl.apush_blob(session, self.repo, image.config)
            layer = await cl.apush_blob(session, self.repo, image.layers[0])
            manifest = image.manifest
            tags = (
                cl.aput_manifest(session, self.repo, f"v{i:05d}", manifest) for i in range(k.tags)
            )
            await cl.bounded(tags, k.seed_concurrency)

            async def repository(i: int) -> None:
                name = f"catalog/r{i:05d}"
                await cl.amount(session, name, config, self.repo)
                await cl.amount(session, name, layer, self.repo)
                await cl.aput_manifest(session, name, "latest", manifest)

            await cl.bounded(
                (repository(i) for i in range(k.catalog_repositories)), k.seed_concurrency
            )

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        with cl.Client(registry, k.request_timeout) as c:
            tags_path = f"/v2/{self.repo}/tags/list"
            full = self._time(c, tags_path, k.list_samples, count="tags", expect_count=k.tags)
            page = self._time(
                c, f"{tags_path}?n={k.page_size}", k.list_samples, count="tags", expect_count=None
            )
            catalog_full = self._time(
                c,
                "/v2/_catalog",
                k.catalog_full_samples,
                count="repositories",
                expect_count=k.catalog_repositories,
                follow=True,
            )
            catalog_page = self._time(
                c,
                f"/v2/_catalog?n={k.page_size}",
                k.list_samples,
                count="repositories",
                expect_count=k.page_size,
            )
        return {
            "tags_full_ms": full,
            "tags_page_ms": page,
            "catalog_full_ms": catalog_full,
            "catalog_page_ms": catalog_page,
        }

    @staticmethod
    def _time(
        c: cl.Client,
        path: str,
        samples: int,
        *,
        count: str,
        expect_count: int | None,
        follow: bool = False,
    ) -> float:
        import json

        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            items = 0
            next_path: str | None = path
            while next_path:
                _, headers, body = c.request("GET", next_path)
                items += len(json.loads(body)[count] or [])
                next_path = _next_link(headers) if follow else None
            timings.append((time.perf_counter() - started) * 1000)
            if expect_count is not None and items < expect_count:
                raise ScenarioError(f"GET {path} listed {items}, expected {expect_count}")
        return median(timings)


# -- 8. concurrent clients ---------------------------------------------------------------------


class ConcurrentClients(Scenario):
    key = "concurrency"
    title = "8. Concurrent clients pushing and pulling small images"
    metrics = (
        Metric("total_s", "total time", "s", "lower"),
        Metric("errors", "errors", "count", "lower"),
    )

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        started = time.perf_counter()
        errors = asyncio.run(self._all(ctx.knobs, registry, rep))
        total = time.perf_counter() - started
        if errors:
            ctx.shared.setdefault(f"concurrency_errors_{registry.name}", []).extend(errors)  # type: ignore[union-attr]
        return {"total_s": total, "errors": float(len(errors))}

    async def _all(self, k: Knobs, registry: Registry, rep: int) -> list[str]:
        results = await asyncio.gather(
            *(self._client(k, registry, rep, i) for i in range(k.clients)), return_exceptions=True
        )
        errors = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(f"{type(result).__name__}: {result}")
            else:
                errors.extend(result)
        return errors

    async def _client(self, k: Knobs, registry: Registry, rep: int, index: int) -> list[str]:
        repo = f"concurrency{rep}/client{index:02d}"
        errors: list[str] = []
        images = [
            cl.small_image(k.client_layer_bytes, f"{repo}:{n}") for n in range(k.images_per_client)
        ]
        async with cl.async_session(registry, 1, k.request_timeout) as session:
            for n, image in enumerate(images):
                try:
                    await cl.apush_blob(session, repo, image.config)
                    for layer in image.layers:
                        await cl.apush_blob(session, repo, layer)
                    await cl.aput_manifest(session, repo, f"t{n}", image.manifest)
                except (TimeoutError, aiohttp.ClientError, cl.HTTPError) as exc:
                    errors.append(f"push {repo}:t{n}: {exc}")
            for n, image in enumerate(images):
                try:
                    await self._pull(session, repo, f"t{n}", image)
                except (TimeoutError, aiohttp.ClientError, cl.HTTPError) as exc:
                    errors.append(f"pull {repo}:t{n}: {exc}")
        return errors

    @staticmethod
    async def _pull(
        session: aiohttp.ClientSession, repo: str, tag: str, image: cl.SmallImage
    ) -> None:
        async with session.get(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": cl.OCI_MANIFEST}
        ) as response:
            manifest = await cl.acheck(response, (200,))
        if manifest != image.manifest:
            raise cl.HTTPError(f"manifest of {repo}:{tag} came back different")
        for blob in (image.config, *image.layers):
            async with session.get(f"/v2/{repo}/blobs/{cl.sha256(blob)}") as response:
                data = await cl.acheck(response, (200,))
            if data != blob:
                raise cl.HTTPError(f"blob of {repo}:{tag} came back different")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


SCENARIOS: list[Scenario] = [
    BlobDownload(),
    MonolithicUpload(),
    ChunkedUpload(),
    Skopeo(),
    ManifestGet(),
    SmallBlobGet(),
    ManifestPut(),
    Listing(),
    ConcurrentClients(),
]
