"""The S3 calls the store makes, and nothing else: a small client in place of boto3's, whose
service model, endpoint rules and botocore cost each worker 23-25 MiB (benchmarks/RESULTS.md,
"Memory, stop 23"). Blocking, thread-safe; the store runs it in its threads (objects.py).

Every answer the store reads is parsed here from S3's XML into plain values (`ObjectInfo`,
`MultipartInfo`, `Page`); errors are `transport.S3Error` with S3's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from cargobay.storage.s3.config import S3Config
from cargobay.storage.s3.credentials import credential_source, region_of
from cargobay.storage.s3.transport import Body, S3Error, Transport, strip

T = TypeVar("T")
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
OCTETS = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class MultipartInfo:
    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None  # None on the last page
    next_upload_id: str | None = None  # ListMultipartUploads's second marker


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _children(element: ElementTree.Element) -> dict[str, str]:
    return {strip(child.tag): child.text or "" for child in element}


def _root(body: bytes) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise S3Error("MalformedResponse", 200, f"unreadable XML answer: {exc}") from None


def _decode(value: str, encoded: bool) -> str:
    return unquote(value) if encoded else value


class S3Client:
    """One bucket's calls. Keys are full object keys (the store adds its prefix)."""

    def __init__(self, config: S3Config, connections: int) -> None:
        self.bucket = config.bucket
        self.transport = Transport(
            config.bucket,
            config.endpoint,
            region_of(config),
            config.path_style,
            credential_source(config),
            connections,
            checksum=config.checksum,
        )
        self.sse: dict[str, str] = {}
        if config.sse:
            self.sse["x-amz-server-side-encryption"] = config.sse
            if config.kms_key_id:
                self.sse["x-amz-server-side-encryption-aws-kms-key-id"] = config.kms_key_id

    def _copy_source(self, key: str) -> str:
        return f"/{quote(self.bucket, safe='')}/{quote(key, safe='/~')}"

    # -- objects -------------------------------------------------------------------------

    def head_bucket(self) -> None:
        self.transport.request("HEAD")

    def head_object(self, key: str) -> int:
        """The object's size; S3Error (status 404) when it does not exist."""
        _, headers, _ = self.transport.request("HEAD", key)
        return int(headers.get("Content-Length", "0"))

    def put_object(
        self, key: str, body: bytes | list[bytes], *, if_none_match: bool = False
    ) -> None:
        headers = {"content-type": OCTETS, **self.sse}
        if if_none_match:
            headers["if-none-match"] = "*"
        self.transport.request("PUT", key, headers=headers, body=body)

    def get_object(self, key: str, byte_range: str | None = None) -> Body:
        """The object's body to stream (`byte_range` as in a Range header: bytes=a-b)."""
        headers = {"range": byte_range} if byte_range else None
        _, _, body = self.transport.request("GET", key, headers=headers, stream=True)
        assert isinstance(body, Body)
        return body

    def get_bytes(self, key: str) -> bytes:
        _, _, body = self.transport.request("GET", key)
        assert isinstance(body, bytes)
        return body

    def delete_object(self, key: str) -> None:
        self.transport.request("DELETE", key)

    def copy_object(self, key: str, source: str) -> None:
        headers = {"x-amz-copy-source": self._copy_source(source), **self.sse}
        self.transport.request("PUT", key, headers=headers)

    def presigned_get(self, key: str, expires: int) -> str:
        return self.transport.presigned_get(key, expires)

    def _listing(
        self, query: list[tuple[str, str]], entry: str
    ) -> tuple[dict[str, str], bool, list[dict[str, str]]]:
        """One listing page: its top-level fields, whether keys come URL-encoded, and the
        fields of each `entry` element (`Contents` or `Upload`)."""
        _, _, body = self.transport.request("GET", query=query)
        root = _root(body)  # type: ignore[arg-type]
        top = _children(root)
        entries = [_children(e) for e in root if strip(e.tag) == entry]
        return top, top.get("EncodingType") == "url", entries

    def list_objects(self, prefix: str, token: str | None = None) -> Page[ObjectInfo]:
        """One ListObjectsV2 page (keys URL-encoded on the wire, so any key survives XML)."""
        query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
        if token:
            query.append(("continuation-token", token))
        top, encoded, entries = self._listing(query, "Contents")
        items = [
            ObjectInfo(
                _decode(fields["Key"], encoded),
                int(fields.get("Size") or 0),
                _timestamp(fields["LastModified"]),
            )
            for fields in entries
        ]
        truncated = top.get("IsTruncated") == "true"
        return Page(items, (top.get("NextContinuationToken") or None) if truncated else None)

    # -- multipart -----------------------------------------------------------------------

    def create_multipart_upload(self, key: str) -> str:
        headers = {"content-type": OCTETS, **self.sse}
        _, _, body = self.transport.request("POST", key, query=[("uploads", "")], headers=headers)
        upload_id = _children(_root(body)).get("UploadId")  # type: ignore[arg-type]
        if not upload_id:
            raise S3Error("MalformedResponse", 200, "CreateMultipartUpload without an UploadId")
        return upload_id

    def upload_part_copy(
        self, key: str, upload_id: str, number: int, source: str, byte_range: str | None = None
    ) -> str:
        """Copy (a range of) `source` as part `number`; its ETag."""
        headers = {"x-amz-copy-source": self._copy_source(source)}
        if byte_range:
            headers["x-amz-copy-source-range"] = byte_range
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        _, _, body = self.transport.request("PUT", key, query=query, headers=headers)
        etag = _children(_root(body)).get("ETag")  # type: ignore[arg-type]
        if not etag:
            raise S3Error("MalformedResponse", 200, "UploadPartCopy without an ETag")
        return etag

    def complete_multipart_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
            for n, etag in enumerate(etags, start=1)
        )
        document = f'<CompleteMultipartUpload xmlns="{XMLNS}">{parts}</CompleteMultipartUpload>'
        self.transport.request(
            "POST",
            key,
            query=[("uploadId", upload_id)],
            headers={"content-type": "application/xml"},
            body=document.encode(),
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.transport.request("DELETE", key, query=[("uploadId", upload_id)])

    def list_multipart_uploads(
        self, prefix: str, key_marker: str | None = None, upload_id_marker: str | None = None
    ) -> Page[MultipartInfo]:
        query = [("uploads", ""), ("prefix", prefix), ("encoding-type", "url")]
        if key_marker:
            query.append(("key-marker", key_marker))
        if upload_id_marker:
            query.append(("upload-id-marker", upload_id_marker))
        top, encoded, entries = self._listing(query, "Upload")
        items = [
            MultipartInfo(
                _decode(fields["Key"], encoded),
                fields["UploadId"],
                _timestamp(fields["Initiated"]),
            )
            for fields in entries
        ]
        if top.get("IsTruncated") != "true":
            return Page(items, None)
        marker = _decode(top.get("NextKeyMarker", ""), encoded)
        return Page(items, marker, top.get("NextUploadIdMarker") or None)

    def close(self) -> None:
        self.transport.close()
