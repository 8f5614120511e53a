"""Rendering IAM Query API responses as the XML IAM sends.

A result is plain data: a dict becomes child elements in order, a list becomes `<member>`
elements (`<Users><member>..</member></Users>`), a bool is `true`/`false`, and anything else
is its text (timestamps arrive already as ISO 8601 strings).
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
CONTENT_TYPE = "text/xml"
# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(_NOT_XML.sub("\ufffd", str(value)))


def _element(name: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    out.append(f"<{name}>")
    if isinstance(value, dict):
        for key, item in value.items():
            _element(key, item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _element("member", item, out)
    else:
        out.append(_text(value))
    out.append(f"</{name}>")


def document(action: str, result: dict[str, Any] | None, request_id: str) -> bytes:
    """`<{Action}Response>` with `<{Action}Result>` (absent for actions without output) and
    the request id."""
    out = [f'<{action}Response xmlns="{NAMESPACE}">']
    if result is not None:
        _element(f"{action}Result", result, out)
    _element("ResponseMetadata", {"RequestId": request_id}, out)
    out.append(f"</{action}Response>")
    return "".join(out).encode()


def error_document(code: str, message: str, request_id: str, *, sender: bool = True) -> bytes:
    out = [f'<ErrorResponse xmlns="{NAMESPACE}">']
    error = {"Type": "Sender" if sender else "Receiver", "Code": code, "Message": message}
    _element("Error", error, out)
    _element("RequestId", request_id, out)
    out.append("</ErrorResponse>")
    return "".join(out).encode()


def _headers(request_id: str) -> dict[str, str]:
    return {"x-amzn-RequestId": request_id, "Content-Type": CONTENT_TYPE}


def response(action: str, result: dict[str, Any] | None, request_id: str) -> web.Response:
    return web.Response(body=document(action, result, request_id), headers=_headers(request_id))


def error_response(
    code: str, message: str, status: int, request_id: str, *, sender: bool = True
) -> web.Response:
    body = error_document(code, message, request_id, sender=sender)
    return web.Response(status=status, body=body, headers=_headers(request_id))
