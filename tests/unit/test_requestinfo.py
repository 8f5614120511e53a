"""aws:SourceIp and aws:SecureTransport behind a trusted load balancer."""

from __future__ import annotations

from unittest import mock

from aiohttp.test_utils import make_mocked_request

from cargobay.requestinfo import request_context


def _request(remote: str, headers: dict[str, str]):
    request = make_mocked_request("GET", "/v2/", headers=headers)
    return mock.Mock(wraps=request, remote=remote, secure=False, headers=request.headers)


def test_forwarded_for_is_ignored_unless_the_peer_is_trusted() -> None:
    request = _request("203.0.113.9", {"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "https"})
    context = request_context(request, "")
    assert context.source_ip == "203.0.113.9" and not context.secure_transport
    # A peer outside the trusted range cannot spoof its address either.
    assert request_context(request, "127.0.0.0/8").source_ip == "203.0.113.9"


def test_the_nearest_untrusted_hop_is_the_client() -> None:
    request = _request(
        "127.0.0.1",
        {"X-Forwarded-For": "198.51.100.7, 192.0.2.1, 10.0.0.5", "X-Forwarded-Proto": "https"},
    )
    context = request_context(request, "127.0.0.0/8, 10.0.0.0/8")
    assert context.source_ip == "192.0.2.1"  # 198.51.100.7 was claimed by the client itself
    assert context.secure_transport


def test_all_hops_trusted_gives_the_first() -> None:
    request = _request("127.0.0.1", {"X-Forwarded-For": "10.0.0.9"})
    assert request_context(request, "127.0.0.0/8,10.0.0.0/8").source_ip == "10.0.0.9"
