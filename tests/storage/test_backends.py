"""Storage backends are looked up by URL scheme; a new one (a wrapper, say) registers itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargobay.config import ConfigError, load_settings
from cargobay.storage import backends, check_url, open_store, register_backend
from cargobay.storage.filesystem import FilesystemStore


@pytest.fixture
def restore_backends() -> Iterator[None]:
    saved = dict(backends._BACKENDS)
    yield
    backends._BACKENDS.clear()
    backends._BACKENDS.update(saved)


def test_built_in_schemes(tmp_path: Path) -> None:
    assert backends.schemes() == ["file", "s3"]
    store = open_store(f"file://{tmp_path / 'blobs'}")
    assert isinstance(store, FilesystemStore)
    assert store.root == (tmp_path / "blobs").resolve()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unsupported storage URL scheme ftp://: use one of file://, s3://"),
        ("/var/lib/blobs", "unsupported storage URL without a scheme: use one of file://, s3://"),
        ("file://", "a file storage URL looks like file:///var/lib/cargobay/storage"),
        ("s3://bucket?colour=blue", "S3 storage URL: unknown parameter(s) colour"),
    ],
)
def test_unusable_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_url(url)
    assert str(raised.value) == message
    with pytest.raises(ValueError):
        open_store(url)
    with pytest.raises(ConfigError) as config:
        load_settings(overrides={"storage": url}, environ={})
    assert str(config.value) == f"storage: {message}"


def test_secrets_in_urls_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(overrides={"storage": "s3://bkt?secret_access_key=hush"}, environ={})
    assert "hush" not in str(raised.value)
    with pytest.raises(ValueError) as unknown:
        check_url("nope://user:hush@host/path?secret=hush")
    assert "hush" not in str(unknown.value)
    with pytest.raises(ValueError) as schemeless:
        check_url("user:hush@host/path")
    assert "hush" not in str(schemeless.value)


def test_a_new_backend_registers_its_scheme(tmp_path: Path, restore_backends: None) -> None:
    """A wrapper backend: `wrap+file://...` opens the filesystem store underneath."""
    opened: list[str] = []
    checked: list[str] = []

    def factory(url: str) -> FilesystemStore:
        opened.append(url)
        return open_store(url.removeprefix("wrap+"))  # type: ignore[return-value]

    def check(url: str) -> None:
        checked.append(url)
        if "bad" in url:
            raise ValueError("wrap storage URL: bad")

    register_backend("wrap+file", factory, check)
    url = f"wrap+file://{tmp_path / 'blobs'}"
    settings = load_settings(overrides={"storage": url}, environ={})
    assert settings.storage_url == url
    assert checked == [url]
    store = open_store(url)
    assert isinstance(store, FilesystemStore) and opened == [url]
    with pytest.raises(ConfigError, match=r"^storage: wrap storage URL: bad$"):
        load_settings(overrides={"storage": "wrap+file:///bad"}, environ={})


def test_checking_an_s3_url_loads_no_aws_library() -> None:
    """The supervisor checks the storage URL; it should not carry boto3 for that."""
    code = (
        "import sys; from cargobay.config import load_settings; "
        "load_settings(overrides={'storage': 's3://bkt/p?region=eu-west-1'}, environ={}); "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
