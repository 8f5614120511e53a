"""Large registries for benchmarks/flat_costs.py, generated directly in the metadata database.

Pushing 100,000 repositories or tags through the API would take hours on this machine, so only
one small image is pushed for real (through `/v2/`, so its blobs are in the blob store and its
rows are exactly what a push writes); everything else is inserted with SQL into the tables of
`cargobay.metadata.schema`, copying those rows, while the server is stopped:

- `repositories(n)`: n - 2 more repositories `bench/r<i>`, each linking the same two blobs and
  holding a copy of the pushed manifest under tag `v1`;
- `tags(n)`: n distinct manifests (the pushed one plus an annotation `n: <i>`, so each has a
  digest of its own) in the repository `bench/tags`, each under tag `t<i>`, pushed one a
  second; the oldest `OLD_IMAGES` of them (all but the real push, if fewer) 30 days earlier, so
  a `sinceImagePushed` rule of a week selects the same number of images at every size.

GC's registry (`gc_registry`) has only blob rows and their links and references: `total` blob
rows of which `garbage` are linked to nothing (old enough for GC), the rest linked from and
referenced by one manifest row each. The garbage is in GC's queue (`gc_queue`), as the image
deletes that made it would have left it. Their bytes are not written: GC deletes a missing file
as a no-op, so the figure is GC's own work in the database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from benchmarks import client as cl

BASE_REPO = "bench/base"
TAGS_REPO = "bench/tags"
DAY = 86400.0
OLD_IMAGES = 50  # images of `bench/tags` pushed a month ago, whatever the size


def _connect(data_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(data_dir / "metadata.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    return db


def push_base(c: cl.Client) -> cl.SmallImage:
    """The one real push: `bench/base:v1` and `bench/tags:t0`, same blobs."""
    image = cl.small_image(1024, "flat-costs")
    for repo, tag in ((BASE_REPO, "v1"), (TAGS_REPO, "t0")):
        c.put_blob(repo, image.config)
        c.put_blob(repo, image.layers[0])
        c.put_manifest(repo, tag, image.manifest)
    return image


def repo_name(i: int) -> str:
    return f"bench/r{i:06d}"


def tag_name(i: int) -> str:
    return f"t{i:06d}"


def add_repositories(data_dir: Path, count: int) -> None:
    """Repositories `bench/r000000`... each a copy of `bench/base` (its blobs, manifest, tag)."""
    db = _connect(data_dir)
    try:
        with db:
            (base,) = db.execute(
                "SELECT id FROM repositories WHERE name = ?", (BASE_REPO,)
            ).fetchone()
            db.executemany(
                "INSERT INTO repositories (registry_id, name, created_at, tag_mutability,"
                " scan_on_push, encryption_type, kms_key, policy_text, lifecycle_policy)"
                " SELECT registry_id, ?, created_at, tag_mutability, scan_on_push,"
                " encryption_type, kms_key, policy_text, lifecycle_policy"
                " FROM repositories WHERE id = ?",
                ((repo_name(i), base) for i in range(count)),
            )
            new = "(SELECT id FROM repositories WHERE name LIKE 'bench/r%')"
            for table, columns in (
                ("repository_blobs", "digest, created_at"),
                (
                    "manifests",
                    "digest, media_type, artifact_type, subject_digest, annotations, size,"
                    " image_size, content, pushed_at, last_pulled_at",
                ),
                ("manifest_references", "manifest_digest, target_digest, kind"),
                ("tags", "name, digest, updated_at"),
            ):
                db.execute(
                    f"INSERT INTO {table} (repository_id, {columns})"
                    f" SELECT r.id, {columns} FROM {table}, {new} AS r"
                    f" WHERE {table}.repository_id = ?",
                    (base,),
                )
    finally:
        db.close()


def add_tags(data_dir: Path, image: cl.SmallImage, count: int) -> None:
    """`count` - 1 more images in `bench/tags`, `t000001`..., each its own manifest."""
    db = _connect(data_dir)
    try:
        with db:
            (repo,) = db.execute(
                "SELECT id FROM repositories WHERE name = ?", (TAGS_REPO,)
            ).fetchone()
            row = db.execute(
                "SELECT media_type, image_size, pushed_at FROM manifests WHERE repository_id = ?",
                (repo,),
            ).fetchone()
            refs = db.execute(
                "SELECT target_digest, kind FROM manifest_references WHERE repository_id = ?",
                (repo,),
            ).fetchall()
            now = time.time()
            manifests, references, tags = [], [], []
            for i in range(1, count):
                content = cl.manifest_for(image.config, image.layers, {"n": str(i)})
                digest = "sha256:" + hashlib.sha256(content).hexdigest()
                pushed = row[2] - (count - i)  # one a second, the newest last
                if i <= OLD_IMAGES:
                    pushed -= 30 * DAY
                manifests.append(
                    (repo, digest, row[0], json.dumps({"n": str(i)}), len(content), row[1],
                     content, pushed)
                )  # fmt: skip
                references += [(repo, digest, target, kind) for target, kind in refs]
                tags.append((repo, tag_name(i), digest, min(pushed, now)))
            db.executemany(
                "INSERT INTO manifests (repository_id, digest, media_type, annotations, size,"
                " image_size, content, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                manifests,
            )
            db.executemany(
                "INSERT INTO manifest_references (repository_id, manifest_digest, target_digest,"
                " kind) VALUES (?, ?, ?, ?)",
                references,
            )
            db.executemany(
                "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)",
                tags,
            )
    finally:
        db.close()


def gc_registry(data_dir: Path, total: int, garbage: int) -> None:
    """`total` blob rows, `garbage` of them unreferenced, all older than GC's grace period."""
    db = _connect(data_dir)
    old = time.time() - 10 * DAY
    try:
        with db:
            db.execute(
                "INSERT INTO repositories (registry_id, name, created_at, tag_mutability,"
                " scan_on_push, encryption_type) VALUES ('000000000000', 'bench/gc', ?,"
                " 'MUTABLE', 0, 'AES256')",
                (old,),
            )
            (repo,) = db.execute("SELECT id FROM repositories WHERE name = 'bench/gc'").fetchone()
            manifest = "sha256:" + "0" * 64
            db.execute(
                "INSERT INTO manifests (repository_id, digest, media_type, size, image_size,"
                " content, pushed_at) VALUES (?, ?, ?, 2, 0, X'7b7d', ?)",
                (repo, manifest, cl.OCI_MANIFEST, old),
            )
            # Digests in hash order, so the garbage is scattered through the table, as in a
            # real registry, not bunched at one end of the index.
            digests = [f"sha256:{hashlib.sha256(b'%d' % i).hexdigest()}" for i in range(total)]
            live = digests[: total - garbage]
            db.executemany(
                "INSERT INTO blobs (digest, size, created_at) VALUES (?, 1024, ?)",
                ((d, old) for d in digests),
            )
            db.executemany(
                "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)",
                ((repo, d, old) for d in live),
            )
            db.executemany(
                "INSERT INTO manifest_references (repository_id, manifest_digest, target_digest,"
                " kind) VALUES (?, ?, ?, 'blob')",
                ((repo, manifest, d) for d in live),
            )
            db.executemany(
                "INSERT INTO gc_queue (repository_id, digest, since) VALUES (0, ?, 0)",
                ((d,) for d in digests[total - garbage :]),
            )
    finally:
        db.close()
