"""Pull scenarios of issue 19: a skopeo pull right after the push and from cold, a 1 GiB blob
GET warm and cold with its spread, and a storm of concurrent pulls of one image.

Wall figures on a shared machine are noisy, so each run also records what load does not move
much: the CPU seconds the registry's process tree spent (utime + stime from /proc) and the
MiB it served per CPU second, the load average at the time, and how much of the registry's
data sat in the page cache before the pull (`fincore`).

Each warm sample is checked to be warm first, and each cold one cold (`pagecache`: this VM
pages files out on its own), the client's CPU is recorded beside the server's (a single curl
receiving a sendfile stream is the bound of scenario 11), and the storm records each worker's
CPU (how evenly SO_REUSEPORT spread the 50 connections).

Scenarios 11 and 12 also measure, in every repetition, the machine's own ceiling: a bare
server (`benchmarks.loopback`) sending the same bytes to the same curl clients with `sendfile`
and with copies. Each registry's MiB/s is reported as a share of the faster of the two, and
the report's `ceiling_over` says what ratio a server as cheap as the bare one would show.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import client as cl
from benchmarks.config import MiB
from benchmarks.loopback import MODES, BareServer, write_routes
from benchmarks.pagecache import COLD_METHOD, damon_paged_out_mib, evict, resident_mib
from benchmarks.registries import Registry, process_tree
from benchmarks.scenarios import (
    Context,
    Metric,
    Scenario,
    ScenarioError,
    _curl_auth,
    _random_file,
    _rewrite_prefix,
    _run,
    build_image,
    curl_upload,
    median,
    wrk_get,
)

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(registry: Registry) -> float:
    """utime + stime of the registry's process tree so far."""
    return sum(worker_cpu(registry).values())


def worker_cpu(registry: Registry) -> dict[int, float]:
    """utime + stime of each process of the registry's tree so far (how the load spreads
    over the workers)."""
    found = {}
    for pid in process_tree(registry.pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def _children_cpu() -> float:
    """utime + stime of this process's waited-for children (the clients) so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _note(ctx: Context, key: str, registry: Registry, rep: int, **values: object) -> None:
    """Per-run details (load average, spread) for the JSON, beside the medians."""
    runs = ctx.shared.setdefault(f"pull_notes_{key}", [])
    assert isinstance(runs, list)
    runs.append({"registry": registry.name, "rep": rep, "load1": os.getloadavg()[0], **values})


class _Measured:
    """Wall, server CPU and client CPU seconds of one step (the clients: the subprocesses
    this process waited for meanwhile)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __enter__(self) -> _Measured:
        self.workers = worker_cpu(self.registry)
        self.client = _children_cpu()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.client = _children_cpu() - self.client
        after = worker_cpu(self.registry)
        self.workers = {pid: after[pid] - self.workers.get(pid, 0.0) for pid in after}
        self.cpu = sum(self.workers.values())


class PullScenario(Scenario):
    """Collects the per-run notes into the report (`report`, read by run.py)."""

    def report(self, ctx: Context) -> dict[str, object]:
        runs = ctx.shared.get(f"pull_notes_{self.key}", [])
        found: dict[str, object] = {"cold_method": COLD_METHOD, "runs": runs}
        ceilings = ctx.shared.get(f"ceiling_{self.key}")
        if not isinstance(ceilings, dict) or not ceilings:
            return found
        found["ceiling"] = [{"rep": rep, **by} for rep, by in sorted(ceilings.items())]
        labels = list(next(iter(ceilings.values()))["sendfile"])
        best = {
            label: median([_best(ctx, self.key, rep, label) for rep in ceilings])
            for label in labels
        }
        found["ceiling_best_mib_s"] = {label: round(value, 1) for label, value in best.items()}
        # The ratio to each registry that a server as cheap as the bare one would show:
        # against Distribution, the most any server could reach on this machine.
        measured: dict[str, dict[str, list[float]]] = {}
        for note in runs if isinstance(runs, list) else []:
            for label, value in note.get("measured_mib_s", {}).items():
                measured.setdefault(label, {}).setdefault(note["registry"], []).append(value)
        found["ceiling_over"] = {
            label: {name: round(best[label] / median(v), 3) for name, v in by.items()}
            for label, by in measured.items()
            if label in best
        }
        return found


Samples = dict[str, list[tuple[float, _Measured]]]


def _ceiling(
    ctx: Context,
    key: str,
    rep: int,
    routes: dict[str, Path | tuple[Path, str]],
    measure: Callable[[Registry], Samples],
) -> None:
    """Run `measure` against the bare server (`benchmarks.loopback`), sending with `sendfile`
    and with copies, for this repetition of scenario `key`. The server serves hard links of
    the routed files from a directory of its own, so evicting its data (`pagecache.evict`)
    touches nothing else. `measure` answers samples by label ("warm", "cold", ...): the MiB
    moved and the step's measurement; their medians go to the report."""
    home = ctx.workdir / f"bare-{key}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "files").mkdir(parents=True)
    linked: dict[str, Path | tuple[Path, str]] = {}
    for i, (url, target) in enumerate(routes.items()):
        file, ctype = target if isinstance(target, tuple) else (target, "")
        link = home / "files" / str(i)
        os.link(file, link)
        linked[url] = (link, ctype) if ctype else link
    routes_file = write_routes(home / "routes.json", linked)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for mode in MODES:
        bare = BareServer(home, ctx.knobs.start_timeout, mode, routes_file).start()
        try:
            samples = measure(bare)
        finally:
            bare.stop()
        found[mode] = {label: _stats(taken) for label, taken in samples.items()}
    shutil.rmtree(home, ignore_errors=True)
    ceilings = ctx.shared.setdefault(f"ceiling_{key}", {})
    assert isinstance(ceilings, dict)
    ceilings[rep] = found
    shown = "; ".join(
        f"{mode} " + ", ".join(f"{label} {by['mib_s']:,.0f}" for label, by in labels.items())
        for mode, labels in found.items()
    )
    print(f"   bare server  rep {rep + 1}: MiB/s {shown}", file=sys.stderr, flush=True)


def _stats(samples: list[tuple[float, _Measured]]) -> dict[str, float]:
    gib = samples[0][0] / 1024
    return {
        "mib_s": round(median([mib / step.wall for mib, step in samples]), 1),
        "server_cpu_s_per_gib": round(median([step.cpu / gib for _, step in samples]), 3),
        "client_cpu_s_per_gib": round(median([step.client / gib for _, step in samples]), 3),
    }


def _read_into_cache(root: Path) -> None:
    """Read every file under `root` into the page cache."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(Path(dirpath) / name, "rb") as fh:
                while fh.read(8 * MiB):
                    pass


def _best(ctx: Context, key: str, rep: int, label: str) -> float:
    """The faster bare server's MiB/s in this repetition."""
    ceilings = ctx.shared[f"ceiling_{key}"]
    assert isinstance(ceilings, dict)
    return max(labels[label]["mib_s"] for labels in ceilings[rep].values())


# -- skopeo pull right after the push, then cold -------------------------------------------


class PullAfterPush(PullScenario):
    key = "pull_after_push"
    title = "10. skopeo push, pull right after it (warm), pull from cold"
    metrics = (
        Metric("push_s", "push", "s", "lower"),
        Metric("warm_pull_s", "pull right after the push", "s", "lower"),
        Metric("warm_ceiling_share", "warm pull, share of a bare server's speed", "x", "higher"),
        Metric("cold_pull_s", "pull, page cache dropped", "s", "lower"),
        Metric("warm_cpu_s", "server CPU, warm pull", "CPU s", "lower"),
        Metric("cold_cpu_s", "server CPU, cold pull", "CPU s", "lower"),
    )

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        layout = ctx.workdir / f"big-image-{rep}"
        shutil.rmtree(layout, ignore_errors=True)
        k = ctx.knobs
        image = build_image(layout, [k.big_image_layer_bytes] * k.big_image_layers)
        ctx.shared["big_layout"] = layout
        old = ctx.workdir / f"big-image-{rep - 1}"
        shutil.rmtree(old, ignore_errors=True)
        # The same pulls from the bare server, serving the layout's own files.
        blobs = layout / "blobs" / "sha256"
        digest = image.manifest_digest.split(":")[1]
        routes: dict[str, Path | tuple[Path, str]] = {
            "/v2/bench/bare/manifests/latest": (blobs / digest, cl.OCI_MANIFEST)
        }
        for blob in (image.config, *image.layers):
            routes[f"/v2/bench/bare/blobs/{cl.sha256(blob)}"] = blobs / cl.sha256(blob)[7:]
        mib = sum(len(blob) for blob in (image.manifest, image.config, *image.layers)) / MiB
        ctx.shared["big_image_mib"] = mib

        def pulls(bare: Registry) -> Samples:
            _read_into_cache(bare.workdir)  # as a registry's blobs are right after the push
            ref = f"docker://{bare.host}/bench/bare:latest"
            warm = self._pull(ctx, bare, ref, "warm")
            evict([bare])
            return {"warm": [(mib, warm)], "cold": [(mib, self._pull(ctx, bare, ref, "cold"))]}

        _ceiling(ctx, self.key, rep, routes, pulls)
        _read_into_cache(layout)  # what the pushes read, cached as build_image left it

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise ScenarioError("skopeo is not installed")
        timeout = ctx.knobs.request_timeout
        creds = ["--dest-creds", ":".join(registry.auth)] if registry.auth else []
        ref = f"docker://{registry.host}/bench/pull{rep}:latest"
        # From an empty cache, so the residency after the push is what the push left there.
        evict([registry])
        with _Measured(registry) as push:
            _run(
                [skopeo, "copy", "-q", "--dest-tls-verify=false", *creds,
                 f"oci:{ctx.shared['big_layout']}:latest", ref],
                timeout,
            )  # fmt: skip
        cached_after_push = resident_mib(registry)
        mib = ctx.shared["big_image_mib"]
        assert isinstance(mib, float)
        warm = self._pull(ctx, registry, ref, "warm")
        evict([registry])
        cached_cold = resident_mib(registry)
        cold = self._pull(ctx, registry, ref, "cold")
        _note(
            ctx,
            self.key,
            registry,
            rep,
            resident_mib_after_push=cached_after_push,
            resident_mib_after_evict=cached_cold,
            client_cpu_s={"warm": round(warm.client, 3), "cold": round(cold.client, 3)},
            measured_mib_s={
                "warm": round(mib / warm.wall, 1),
                "cold": round(mib / cold.wall, 1),
            },
        )
        return {
            "push_s": push.wall,
            "warm_ceiling_share": mib / warm.wall / _best(ctx, self.key, rep, "warm"),
            "warm_pull_s": warm.wall,
            "cold_pull_s": cold.wall,
            "warm_cpu_s": warm.cpu,
            "cold_cpu_s": cold.cpu,
        }

    @staticmethod
    def _pull(ctx: Context, registry: Registry, ref: str, label: str) -> _Measured:
        skopeo = shutil.which("skopeo")
        assert skopeo is not None
        creds = ["--src-creds", ":".join(registry.auth)] if registry.auth else []
        target = ctx.workdir / f"pulled-{registry.name}-{label}"
        shutil.rmtree(target, ignore_errors=True)
        try:
            with _Measured(registry) as pull:
                _run(
                    [skopeo, "copy", "-q", "--src-tls-verify=false", *creds, ref,
                     f"oci:{target}:latest"],
                    ctx.knobs.request_timeout,
                )  # fmt: skip
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return pull


# -- 1 GiB blob GET, warm and cold, several samples ----------------------------------------


class BlobGet(PullScenario):
    key = "blob_get"
    title = "11. Blob GET, 1 GiB (curl), warm and cold"
    metrics = (
        Metric("warm_mib_s", "warm (in page cache), median", "MiB/s", "higher"),
        Metric("warm_ceiling_share", "warm, share of a bare server's MiB/s", "x", "higher"),
        Metric("cold_mib_s", "cold (evicted), median", "MiB/s", "higher"),
        Metric("warm_mib_per_cpu_s", "warm, MiB per server CPU s", "MiB/CPU s", "higher"),
        Metric("cold_mib_per_cpu_s", "cold, MiB per server CPU s", "MiB/CPU s", "higher"),
        # curl's own CPU to receive a warm GiB: the single client's bound (RESULTS, stop 23).
        Metric("warm_client_cpu_s_per_gib", "warm, client CPU s per GiB", "CPU s", "lower"),
        Metric("warm_spread", "warm, fastest / slowest sample", "x", "lower"),
    )
    repo = "bench/blobget"

    def setup(self, ctx: Context, registry: Registry) -> None:
        if "blobget_file" not in ctx.shared:
            path = ctx.workdir / "blobget.bin"
            _random_file(path, ctx.knobs.blob_bytes)
            ctx.shared["blobget_file"] = path
            ctx.shared["blobget_digest"] = _rewrite_prefix(path, os.urandom(32))
        path, digest = ctx.shared["blobget_file"], ctx.shared["blobget_digest"]
        curl_upload(ctx, registry, self.repo, path, digest)  # type: ignore[arg-type]

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        path, digest = ctx.shared["blobget_file"], ctx.shared["blobget_digest"]
        assert isinstance(path, Path)
        mib = ctx.knobs.blob_bytes / MiB

        def gets(bare: Registry) -> Samples:
            self._get(ctx, bare)  # the harness's copy of the blob, into the page cache
            warm = [(mib, self._get(ctx, bare)) for _ in range(ctx.knobs.blob_get_samples)]
            cold = []
            for _ in range(ctx.knobs.blob_get_cold_samples):
                evict([bare])
                cold.append((mib, self._get(ctx, bare)))
            return {"warm": warm, "cold": cold}

        _ceiling(ctx, self.key, rep, {f"/v2/{self.repo}/blobs/{digest}": path}, gets)

    def _get(self, ctx: Context, registry: Registry) -> _Measured:
        digest = ctx.shared["blobget_digest"]
        with _Measured(registry) as get:
            out = _run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                 *_curl_auth(registry), f"{registry.url}/v2/{self.repo}/blobs/{digest}"],
                ctx.knobs.request_timeout,
            )  # fmt: skip
        code, size = out.split()
        if code != "200" or int(size) != ctx.knobs.blob_bytes:
            raise ScenarioError(f"download answered {code} with {size} bytes")
        return get

    def _warm_get(self, ctx: Context, registry: Registry) -> tuple[_Measured, float, int]:
        """A GET of a blob fully in the page cache (see `pagecache`): re-warmed by untimed
        GETs while `fincore` finds less; the sample, its residency and the re-warms."""
        want = ctx.knobs.blob_bytes / MiB
        rewarms = 0
        while (cached := resident_mib(registry, ctx.knobs.blob_bytes)) is not None:
            if cached >= want * 0.999 or rewarms == 3:
                break
            self._get(ctx, registry)
            rewarms += 1
        return self._get(ctx, registry), cached or 0.0, rewarms

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        mib = k.blob_bytes / MiB
        damon = damon_paged_out_mib()
        self._get(ctx, registry)  # untimed: the blob is in the page cache from here on
        warm, resident, rewarms = [], [], 0
        for _ in range(k.blob_get_samples):
            sample, cached, again = self._warm_get(ctx, registry)
            warm.append(sample)
            resident.append(round(cached))
            rewarms += again
        cold, cold_resident = [], []
        for _ in range(k.blob_get_cold_samples):
            evict([registry])
            cold_resident.append(resident_mib(registry, k.blob_bytes))
            cold.append(self._get(ctx, registry))
        after = damon_paged_out_mib()
        _note(
            ctx,
            self.key,
            registry,
            rep,
            warm_mib_s=[round(mib / w.wall, 1) for w in warm],
            measured_mib_s={
                "warm": round(median([mib / w.wall for w in warm]), 1),
                "cold": round(median([mib / c.wall for c in cold]), 1),
            },
            cold_mib_s=[round(mib / c.wall, 1) for c in cold],
            warm_server_cpu_s=[round(w.cpu, 3) for w in warm],
            warm_client_cpu_s=[round(w.client, 3) for w in warm],
            cold_server_cpu_s=[round(c.cpu, 3) for c in cold],
            warm_resident_mib=resident,
            warm_rewarms=rewarms,
            cold_resident_mib=cold_resident,
            damon_paged_out_mib=None if damon is None or after is None else after - damon,
        )
        gib = mib / 1024
        return {
            "warm_mib_s": median([mib / w.wall for w in warm]),
            "warm_ceiling_share": median([mib / w.wall for w in warm])
            / _best(ctx, self.key, rep, "warm"),
            "cold_mib_s": median([mib / c.wall for c in cold]),
            "warm_mib_per_cpu_s": median([mib / max(w.cpu, 1 / _TICK) for w in warm]),
            "cold_mib_per_cpu_s": median([mib / max(c.cpu, 1 / _TICK) for c in cold]),
            "warm_client_cpu_s_per_gib": median([w.client / gib for w in warm]),
            "warm_spread": max(mib / w.wall for w in warm) / min(mib / w.wall for w in warm),
        }


# -- pull storm ------------------------------------------------------------------------------


class PullStorm(PullScenario):
    key = "pull_storm"
    title = "12. Pull storm: concurrent clients pulling one image (curl, every blob)"
    metrics = (
        Metric("mib_s", "aggregate throughput", "MiB/s", "higher"),
        Metric("ceiling_share", "share of a bare server's throughput", "x", "higher"),
        Metric("p99_s", "p99 client completion", "s", "lower"),
        Metric("p50_s", "median client completion", "s", "lower"),
        Metric("mib_per_cpu_s", "MiB per server CPU s", "MiB/CPU s", "higher"),
        Metric("errors", "errors", "count", "lower"),
    )
    repo = "bench/storm"

    def setup(self, ctx: Context, registry: Registry) -> None:
        k = ctx.knobs
        if "storm_image" not in ctx.shared:
            layers = [os.urandom(k.storm_layer_bytes) for _ in range(k.storm_layers)]
            config = b'{"architecture":"amd64","os":"linux"}'
            ctx.shared["storm_image"] = cl.SmallImage(config, layers)
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        with cl.Client(registry, k.request_timeout) as c:
            for blob in (image.config, *image.layers):
                c.put_blob(self.repo, blob)
            c.put_manifest(self.repo, "latest", image.manifest)
        # One untimed pull: the storm measures a warm image (stated in RESULTS.md).
        config = self._config(ctx, registry)
        errors = self._client(ctx, config, time.perf_counter(), [], self._sizes(ctx))
        if errors:
            raise ScenarioError(f"warm-up pull failed: {errors}")

    def _config(self, ctx: Context, registry: Registry) -> Path:
        """A curl config fetching the manifest and every blob, each to /dev/null."""
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        path = ctx.workdir / f"storm-{registry.name}.curl"
        lines = [f'header = "Accept: {cl.OCI_MANIFEST}"']
        if registry.auth:
            lines.append(f'user = "{":".join(registry.auth)}"')
        urls = [f"{registry.url}/v2/{self.repo}/manifests/latest"] + [
            f"{registry.url}/v2/{self.repo}/blobs/{cl.sha256(b)}"
            for b in (image.config, *image.layers)
        ]
        for url in urls:
            lines += [f'url = "{url}"', 'output = "/dev/null"']
        path.write_text("\n".join(lines) + "\n")
        return path

    def _client(
        self, ctx: Context, config: Path, started: float, done: list[float], sizes: list[int]
    ) -> list[str]:
        proc = subprocess.run(
            ["curl", "-sS", "-K", str(config),
             "-w", "%{http_code} %{size_download}\\n"],
            capture_output=True,
            text=True,
            timeout=ctx.knobs.request_timeout,
        )  # fmt: skip
        done.append(time.perf_counter() - started)
        if proc.returncode != 0:
            return [f"curl exited {proc.returncode}: {proc.stderr[-300:]}"]
        got = [line.split() for line in proc.stdout.splitlines()]
        if [(c, int(s)) for c, s in got] != [("200", n) for n in sizes]:
            return [f"unexpected answers {got}"]
        return []

    @staticmethod
    def _sizes(ctx: Context) -> list[int]:
        """What each URL of a client's config answers, computed once: `SmallImage.manifest`
        hashes every layer when read, and fifty clients reading it as they finished once put
        5 GiB of SHA-256 inside the timed storm (stop 28)."""
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        return [len(image.manifest), len(image.config), *(len(x) for x in image.layers)]

    def _storm(
        self, ctx: Context, registry: Registry
    ) -> tuple[_Measured, list[float], list[str], float]:
        """Every client pulls the whole image at once: the step's measurement, each client's
        completion time, the errors, and the MiB served."""
        k = ctx.knobs
        config = self._config(ctx, registry)
        sizes = self._sizes(ctx)
        done: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        gate = threading.Barrier(k.storm_clients + 1)

        def client() -> None:
            gate.wait()
            found = self._client(ctx, config, started, done, sizes)
            with lock:
                errors.extend(found)

        threads = [threading.Thread(target=client) for _ in range(k.storm_clients)]
        for thread in threads:
            thread.start()
        with _Measured(registry) as storm:
            started = time.perf_counter()
            gate.wait()
            for thread in threads:
                thread.join()
        return storm, done, errors, sum(sizes) * k.storm_clients / MiB

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        files = ctx.workdir / "storm-files"
        routes: dict[str, Path | tuple[Path, str]] = {
            f"/v2/{self.repo}/manifests/latest": (files / "manifest", cl.OCI_MANIFEST)
        }
        if not files.exists():
            files.mkdir()
            (files / "manifest").write_bytes(image.manifest)
            for i, blob in enumerate((image.config, *image.layers)):
                (files / f"blob-{i}").write_bytes(blob)
        for i, blob in enumerate((image.config, *image.layers)):
            routes[f"/v2/{self.repo}/blobs/{cl.sha256(blob)}"] = files / f"blob-{i}"

        def storm(bare: Registry) -> Samples:
            self._check(self._client(ctx, self._config(ctx, bare), 0.0, [], self._sizes(ctx)))
            measured, _, errors, mib = self._storm(ctx, bare)
            self._check(errors)
            return {"storm": [(mib, measured)]}

        _ceiling(ctx, self.key, rep, routes, storm)

    @staticmethod
    def _check(errors: list[str]) -> None:
        if errors:
            raise ScenarioError(f"the bare server's storm failed: {errors[:3]}")

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        cached = resident_mib(registry)
        storm, done, errors, total_mib = self._storm(ctx, registry)
        ordered = sorted(done)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered) + 0.999999) - 1)]
        if errors:
            ctx.shared.setdefault(f"storm_errors_{registry.name}", []).extend(errors)  # type: ignore[union-attr]
        mib_s = total_mib / storm.wall
        _note(
            ctx,
            self.key,
            registry,
            rep,
            measured_mib_s={"storm": round(mib_s, 1)},
            wall_s=round(storm.wall, 3),
            errors=errors[:5],
            resident_mib_before=cached,
            server_cpu_s=round(storm.cpu, 3),
            # Per process of the tree, largest first: how evenly the workers shared it.
            worker_cpu_s=sorted((round(v, 3) for v in storm.workers.values()), reverse=True),
            client_cpu_s=round(storm.client, 3),
        )
        return {
            "mib_s": mib_s,
            "ceiling_share": mib_s / _best(ctx, self.key, rep, "storm"),
            "p99_s": p99,
            "p50_s": median(ordered),
            "mib_per_cpu_s": total_mib / max(storm.cpu, 1 / _TICK),
            "errors": float(len(errors)),
        }


# -- manifest GETs while large blobs download -------------------------------------------------


class GetsDuringDownloads(PullScenario):
    """A registry serves pulls of large layers and small requests at once: does a download
    hold up the manifest GETs beside it? Four curl clients download the 1 GiB blob of
    scenario 11 over and over while wrk asks for a manifest by tag (8 connections); the
    downloads' own rate is reported too, so neither side is starved to flatter the other."""

    key = "gets_during_downloads"
    title = "13. Manifest GET while 1 GiB blobs download (wrk + 4 curl)"
    metrics = (
        Metric("rps", "manifest GETs/s", "req/s", "higher"),
        Metric("p99_ms", "manifest GET p99", "ms", "lower"),
        Metric("download_mib_s", "downloads meanwhile", "MiB/s", "higher"),
    )
    repo = "bench/mixed"
    downloads = 4

    def setup(self, ctx: Context, registry: Registry) -> None:
        BlobGet().setup(ctx, registry)  # the 1 GiB blob, shared with scenario 11
        with cl.Client(registry, ctx.knobs.request_timeout) as c:
            image = cl.small_image(1024, f"{self.repo}:latest")
            for blob in (image.config, *image.layers):
                c.put_blob(self.repo, blob)
            c.put_manifest(self.repo, "latest", image.manifest)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        digest = ctx.shared["blobget_digest"]
        url = f"{registry.url}/v2/{BlobGet.repo}/blobs/{digest}"
        stop = threading.Event()
        finished: list[float] = []  # when each whole download ended
        errors: list[str] = []

        def download() -> None:
            while not stop.is_set():
                proc = subprocess.run(
                    ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                     *_curl_auth(registry), url],
                    capture_output=True, text=True, timeout=k.request_timeout,
                )  # fmt: skip
                if proc.stdout != f"200 {k.blob_bytes}":
                    errors.append(f"download: {proc.stdout} {proc.stderr[-200:]}")
                    return
                finished.append(time.perf_counter())

        threads = [threading.Thread(target=download) for _ in range(self.downloads)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # every download under way
        started = time.perf_counter()
        try:
            path = f"/v2/{self.repo}/manifests/latest"
            result = wrk_get(ctx, registry, path, {"Accept": cl.OCI_MANIFEST}, connections=8)
        finally:
            ended = time.perf_counter()
            stop.set()
            for thread in threads:
                thread.join()
        if errors:
            raise ScenarioError(errors[0])
        whole = sum(1 for at in finished if started <= at <= ended)
        _note(
            ctx, self.key, registry, rep, downloads_completed=whole, wrk_s=round(ended - started, 2)
        )
        return {
            "rps": result["rps"],
            "p99_ms": result["p99_ms"],
            "download_mib_s": whole * k.blob_bytes / MiB / (ended - started),
        }


PULL_SCENARIOS: list[Scenario] = [
    PullAfterPush(),
    BlobGet(),
    PullStorm(),
    GetsDuringDownloads(),
]
