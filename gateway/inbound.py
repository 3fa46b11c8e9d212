"""What every inbound API request looks like to the router, the meter and the adapters.

Each client API (Chat Completions, Embeddings, Responses, Anthropic Messages) parses its body into its
own frozen dataclass; the rest of the request path sees only this shape:

    endpoint    the policy input's `request.endpoint` (chat.completions | embeddings | responses | messages)
    model       the gateway model name the client asked for
    stream      whether the client wants server-sent events
    max_tokens  the completion cap the client set, None when it set none
    generates   False for embeddings: nothing is generated, so no completion tokens are reserved
    size        the body's length in bytes (how costly counting is)
    body        the whole validated body, for adapters to pass through or translate
    token_parts the texts (and fixed token overheads) the prompt is made of, for counting
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TokenParts:
    texts: list[str]
    fixed: int = 0  # tokens known without encoding: message overheads, images, token-array inputs


class Inbound(Protocol):
    @property
    def endpoint(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def generates(self) -> bool: ...

    @property
    def include_usage(self) -> bool: ...

    @property
    def size(self) -> int: ...

    @property
    def body(self) -> dict[str, Any]: ...

    def token_parts(self) -> TokenParts: ...
