"""Deleting images: the one delete path under `DELETE /v2/.../manifests/<ref>`,
BatchDeleteImage and the lifecycle job.

Rules, the same through every door:
- an image is named by digest, tag or both; a tag that names another digest is refused;
- deleting by digest removes the manifest and every tag on it;
- ECR's untag rule: naming only a tag removes that tag, and the image too when it was its
  last tag (`untag` is the `/v2/` form, which only ever removes the tag, as the spec says);
- the parent-index rule: a manifest that an image index in the same repository lists cannot
  be deleted (the index would dangle) until the index is gone.
Each check and its write share one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cargobay.errors import (
    DomainError,
    ImageNotFound,
    ImageReferencedByManifestList,
    ImageTagDoesNotMatchDigest,
    MissingDigestAndTag,
)
from cargobay.metadata.db import Database
from cargobay.metadata.records import manifests as records
from cargobay.metadata.records import tags as tag_records
from cargobay.oci.digest import parse_digest
from cargobay.oci.names import validate_tag
from cargobay.registry.hooks import CLIENT, Deleted, Hooks
from cargobay.registry.repositories import Repository


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image as a caller names it: by digest, by tag, or both."""

    digest: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What happened to one requested image: `deleted` names what went, else `error` says
    why it stayed."""

    requested: ImageRef
    deleted: ImageRef | None = None
    error: DomainError | None = None


def check_ref(ref: ImageRef) -> None:
    """A well-formed reference or the domain error that says what is wrong with it."""
    if not ref.digest and not ref.tag:
        raise MissingDigestAndTag("Missing image digest and tag")
    if ref.digest:
        parse_digest(ref.digest)
    if ref.tag:
        validate_tag(ref.tag)


def check_refs(refs: Sequence[ImageRef]) -> list[DomainError | None]:
    """`check_ref` for each of a batch: its error, or None for a well-formed reference."""
    errors: list[DomainError | None] = []
    for ref in refs:
        try:
            check_ref(ref)
        except DomainError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def named_digest(ref: ImageRef, tagged: dict[str, str]) -> str:
    """The digest a checked reference names, given what its tag names (`tagged`, from one
    query for a whole batch): ImageNotFound for an unknown tag, ImageTagDoesNotMatchDigest
    when the tag names another digest. A digest alone is returned as is (its manifest's
    existence is the caller's next lookup)."""
    if ref.tag:
        digest = tagged.get(ref.tag)
        if digest is None:
            raise ImageNotFound()
        if ref.digest and digest != ref.digest:
            raise ImageTagDoesNotMatchDigest()
        return digest
    assert ref.digest is not None
    return ref.digest


class DeleteService:
    def __init__(self, db: Database, hooks: Hooks | None = None) -> None:
        self.db = db
        self.hooks = hooks or Hooks()

    async def delete_image(
        self,
        repo: Repository,
        ref: ImageRef,
        *,
        origin: str = CLIENT,
        rule_priority: int | None = None,
    ) -> ImageRef:
        """Delete one image by the rules above; what was deleted, or a domain error.
        `rule_priority` names the lifecycle rule behind an expiry (for the delete hooks)."""
        check_ref(ref)
        async with self.db.write() as conn:
            digest = ref.digest
            if ref.tag:
                tagged = await tag_records.digest_of(conn, repo.id, ref.tag)
                if tagged is None:
                    raise ImageNotFound(_not_found(repo, ref), detail={"tag": ref.tag})
                if digest and tagged != digest:
                    raise ImageTagDoesNotMatchDigest(
                        "Image tag does not match digest", detail={"tag": ref.tag}
                    )
                digest = tagged
                if not ref.digest and len(await tag_records.on(conn, repo.id, digest)) > 1:
                    await tag_records.delete(conn, repo.id, ref.tag)
                    await self.hooks.deleted(
                        conn, Deleted(repo, digest, ref.tag, untagged_only=True, origin=origin)
                    )
                    return ImageRef(digest, ref.tag)
            assert digest is not None
            parents = await records.parents(conn, repo.id, digest)
            if parents:
                raise ImageReferencedByManifestList(
                    f"Requested image referenced by manifest list: {parents}",
                    detail={"digest": digest, "parents": parents},
                )
            if not await records.delete(conn, repo.id, digest):
                raise ImageNotFound(_not_found(repo, ref), detail={"digest": digest})
            tags = tuple(await tag_records.delete_on(conn, repo.id, digest))
            await records.delete_references(conn, repo.id, digest)
            await self.hooks.deleted(
                conn,
                Deleted(
                    repo, digest, ref.tag, origin=origin, tags=tags, rule_priority=rule_priority
                ),
            )
        return ImageRef(digest, ref.tag)

    async def delete_images(
        self, repo: Repository, refs: list[ImageRef], *, origin: str = CLIENT
    ) -> list[DeleteOutcome]:
        """Delete each image on its own; one's failure does not stop the others."""
        outcomes = []
        for ref in refs:
            try:
                outcomes.append(
                    DeleteOutcome(ref, deleted=await self.delete_image(repo, ref, origin=origin))
                )
            except DomainError as exc:
                outcomes.append(DeleteOutcome(ref, error=exc))
        return outcomes

    async def untag(self, repo: Repository, tag: str) -> None:
        """Remove one tag and nothing else (the `/v2/` DELETE by tag)."""
        validate_tag(tag)
        async with self.db.write() as conn:
            digest = await tag_records.digest_of(conn, repo.id, tag)
            if digest is None:
                raise ImageNotFound(detail={"tag": tag})
            await tag_records.delete(conn, repo.id, tag)
            await self.hooks.deleted(conn, Deleted(repo, digest, tag, untagged_only=True))


def _not_found(repo: Repository, ref: ImageRef) -> str:
    named = ", ".join(f"{k}={v}" for k, v in (("digest", ref.digest), ("tag", ref.tag)) if v)
    return (
        f"The image with imageId {{{named}}} does not exist within the repository with name "
        f"'{repo.name}' in the registry with id '{repo.registry_id}'"
    )
