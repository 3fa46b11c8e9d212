"""Parse and check an OpenAI Embeddings request body (`POST /v1/embeddings`).

`input` is a string, a list of strings, a list of token ids, or a list of lists of token ids;
`dimensions`, `encoding_format` and `user` pass through. Nothing is generated, so nothing but the
input is metered. Errors name the parameter, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.chat import is_int, json_body
from gateway.errors import InvalidRequest
from gateway.inbound import TokenParts

MAX_INPUTS = 2048
MAX_TOKEN_ID = 10_000_000
ENCODING_FORMATS = ("float", "base64")


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    texts: list[str]  # string inputs
    token_inputs: int  # tokens given directly as token-id arrays
    body: dict[str, Any]
    size: int = 0

    @property
    def endpoint(self) -> str:
        return "embeddings"

    @property
    def stream(self) -> bool:
        return False

    @property
    def max_tokens(self) -> int | None:
        return None

    @property
    def generates(self) -> bool:
        return False

    @property
    def include_usage(self) -> bool:
        return False

    def token_parts(self) -> TokenParts:
        return TokenParts(self.texts, self.token_inputs)


def parse(raw: bytes) -> EmbeddingsRequest:
    return from_body(json_body(raw), size=len(raw))


def from_body(body: dict[str, Any], *, size: int = 0) -> EmbeddingsRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise InvalidRequest("model is required and must be a non-empty string", param="model")
    texts, tokens = _inputs(body.get("input"))
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not is_int(dimensions) or not 1 <= dimensions <= 65_536):
        raise InvalidRequest("dimensions must be an integer from 1 to 65536", param="dimensions")
    if body.get("stream") not in (None, False):
        raise InvalidRequest("embeddings do not stream", param="stream")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user must be a string", param="user")
    return EmbeddingsRequest(model, texts, tokens, body, size)


def _inputs(value: Any) -> tuple[list[str], int]:
    """(string inputs, token count of token-id inputs) or InvalidRequest."""
    problem = "input must be a non-empty string, an array of strings, or an array (of arrays) of token ids"
    if isinstance(value, str):
        if not value:
            raise InvalidRequest(problem, param="input")
        return [value], 0
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        raise InvalidRequest(f"{problem}, with 1 to {MAX_INPUTS} items", param="input")
    if all(isinstance(v, str) and v for v in value):
        return list(value), 0
    if all(_token_id(v) for v in value):
        return [], len(value)
    if all(isinstance(v, list) and v and all(_token_id(t) for t in v) for v in value):
        return [], sum(len(v) for v in value)
    raise InvalidRequest(problem, param="input")


def _token_id(value: Any) -> bool:
    return is_int(value) and 0 <= value <= MAX_TOKEN_ID
