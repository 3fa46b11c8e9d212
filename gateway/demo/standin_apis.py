"""What stand-in providers answer on the Embeddings and Responses APIs, and tool calls on chat APIs.

Deterministic, so tests can check what reached the client: an embedding's numbers derive from a hash
of its input; a response's text is the behaviour's text; usage is what the stand-in bills.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import struct
import time
from typing import Any

from gateway.demo.stream_events import sse

_ids = itertools.count(1)


def vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


def embeddings_answer(body: dict[str, Any], model: str, prompt_tokens: int) -> dict[str, Any]:
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) else list(inputs or [])
    dimensions = body.get("dimensions") or 8
    data = []
    for i, item in enumerate(items):
        values = vector(json.dumps(item), dimensions)
        embedding: Any = values
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def response_id() -> str:
    return f"resp_standin{next(_ids):06d}"


def response_object(
    rid: str, model: str, text: str, usage: dict[str, int] | None, status: str = "completed"
) -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_" + rid,
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    answer: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [message] if status == "completed" else [],
        "usage": None,
    }
    if usage is not None:
        answer["usage"] = {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        }
    return answer


def responses_events(rid: str, model: str, words: list[str], usage: dict[str, int] | None) -> list[tuple[bool, bytes]]:
    """A Responses stream as OpenAI sends it: created, in_progress, the message item, text deltas, completed."""
    seq = itertools.count()
    started = response_object(rid, model, "", None, status="in_progress")

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    item = {"type": "message", "id": "msg_" + rid, "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    events = [
        (False, event("response.created", response=started)),
        (False, event("response.in_progress", response=started)),
        (False, event("response.output_item.added", output_index=0, item=item)),
        (False, event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)),
    ]
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        delta = event(
            "response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=piece, logprobs=[]
        )
        events.append((True, delta))
    text = " ".join(words)
    done = response_object(rid, model, text, usage)
    events.append(
        (
            False,
            event(
                "response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text, logprobs=[]
            ),
        )
    )
    events.append((False, event("response.output_item.done", output_index=0, item=done["output"][0])))
    events.append((False, event("response.completed", response=done)))
    return events


def openai_tool_message(name: str, arguments: str) -> dict[str, Any]:
    call = {"id": "call_standin", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def anthropic_tool_block(name: str, arguments: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_standin", "name": name, "input": json.loads(arguments)}
