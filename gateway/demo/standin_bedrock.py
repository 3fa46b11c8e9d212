"""A Bedrock stand-in's side of the wire, written with the standard library only, so it checks the
gateway's botocore independently: the SigV4 signature is recomputed from the request as received, and
streams are framed in AWS event-stream messages (prelude, headers, payload, CRC32s)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def sigv4_problem(
    method: str, raw_path: str, headers: Mapping[str, str], body: bytes, access_key: str, secret_key: str, region: str
) -> str | None:
    """None when the request carries a valid SigV4 signature for these credentials, else what is wrong."""
    match = AUTHORIZATION.match(headers.get("Authorization", ""))
    if not match:
        return "missing or malformed Authorization"
    if match["key"] != access_key or match["region"] != region or match["service"] != "bedrock":
        return "wrong credential scope"
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(match["date"]):
        return "X-Amz-Date does not match the scope"
    path, _, query = raw_path.partition("?")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(parse_qsl(query, keep_blank_values=True))
    )
    signed = match["signed"].split(";")
    lower = {k.lower(): v for k, v in headers.items()}
    if "host" not in signed or any(name not in lower for name in signed):
        return "a signed header is missing"
    canonical_headers = "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in signed)
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/~"),
            canonical_query,
            canonical_headers,
            match["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (match["date"], region, "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, match["signature"]) else "signature does not match"


def event_frame(event_type: str, payload: dict[str, Any], *, message_type: str = "event") -> bytes:
    """One AWS event-stream message with string headers and a JSON payload."""
    names = {":event-type" if message_type == "event" else ":exception-type": event_type}
    names.update({":content-type": "application/json", ":message-type": message_type})
    headers = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode() for k, v in names.items()
    )
    data = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(data) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + data
    return message + struct.pack(">I", zlib.crc32(message))


def converse_usage(usage: dict[str, int]) -> dict[str, int]:
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    return {"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion}


def converse_answer(text: str, usage: dict[str, int] | None, tool_call: tuple[str, str] | None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}]
    stop = "end_turn"
    if tool_call is not None:
        content = [
            {"toolUse": {"toolUseId": "tooluse_standin", "name": tool_call[0], "input": json.loads(tool_call[1])}}
        ]
        stop = "tool_use"
    answer: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "metrics": {"latencyMs": 1},
    }
    if usage is not None:
        answer["usage"] = converse_usage(usage)
    return answer


def converse_events(
    words: list[str], usage: dict[str, int] | None, tool_call: tuple[str, str] | None
) -> list[tuple[bool, bytes]]:
    events = [(False, event_frame("messageStart", {"role": "assistant"}))]
    if tool_call is not None:
        start = {"start": {"toolUse": {"toolUseId": "tooluse_standin", "name": tool_call[0]}}, "contentBlockIndex": 0}
        events.append((False, event_frame("contentBlockStart", start)))
        events.append(
            (
                True,
                event_frame(
                    "contentBlockDelta", {"delta": {"toolUse": {"input": tool_call[1]}}, "contentBlockIndex": 0}
                ),
            )
        )
        stop = "tool_use"
    else:
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append((True, event_frame("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0})))
        stop = "end_turn"
    events.append((False, event_frame("contentBlockStop", {"contentBlockIndex": 0})))
    events.append((False, event_frame("messageStop", {"stopReason": stop})))
    metadata: dict[str, Any] = {"metrics": {"latencyMs": 1}}
    if usage is not None:
        metadata["usage"] = converse_usage(usage)
    events.append((False, event_frame("metadata", metadata)))
    return events
