"""Reading request bodies: size limits before and after decompression, JSON, and multipart or
URL-encoded forms; every problem a `RequestError` (4xx)."""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import Request

from dlpipe.serve.inputs import RequestError

MAX_FORM_PARTS = 10_000  # fields and files in one multipart form


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed (gzip or deflate), refused with 413 past `limit` bytes either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the body is {declared} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body exceeds the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise RequestError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", status=415)
    # 32 + MAX_WBITS reads gzip and zlib headers alike; max_length stops a decompression bomb early
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(f"the body is not valid {encoding} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise RequestError(f"the body decompresses past the limit of {limit} bytes", status=413)
    return out


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


async def read_form(request: Request, limit: int, features: list[Any]) -> dict[str, list[Any]]:
    """A multipart form as columns: text fields as text (numbers parsed), files as their content."""
    from starlette.datastructures import UploadFile

    request._body = await read_body(request, limit)  # the limit applies; form() then reads this
    try:
        form = await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except Exception as exc:  # python-multipart's and Starlette's parse errors alike
        raise RequestError(f"the multipart form cannot be read: {exc}") from None
    by_name = {f.name: f for f in features}
    unknown = [k for k in form if k not in by_name]
    if unknown:
        raise RequestError(f"form: unknown feature {unknown[0]!r}")
    columns: dict[str, list[Any]] = {}
    for feature in features:
        values = form.getlist(feature.name)
        if not values:
            raise RequestError(f"form: missing feature {feature.name!r}")
        column = []
        for value in values:
            if isinstance(value, UploadFile):
                column.append(await value.read())
            elif feature.type == "numeric":
                column.append(_form_number(value, feature.name))
            else:
                column.append(value if value != "" else None)
        columns[feature.name] = column
    counts = {len(v) for v in columns.values()}
    if len(counts) > 1:
        raise RequestError("form: every feature must be sent the same number of times (once per row)")
    return columns


def _form_number(value: str, name: str) -> float | None:
    if value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise RequestError(f"form: feature {name!r}: {value[:40]!r} is not a number") from None


async def read_json(request: Request, limit: int) -> Any:
    kind = content_type(request)
    if kind not in ("application/json", ""):
        raise RequestError(f"send JSON (Content-Type application/json), not {kind}", status=415)
    body = await read_body(request, limit)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
