"""OpenAI Embeddings upstream (OpenAI and Azure): the body passes through with the provider's model name.

The answer is checked (a list of embeddings, each a list of numbers or a base64 string) and relayed
untouched; usage is its `prompt_tokens`. Embeddings never stream.
"""

from __future__ import annotations

from typing import Any

from gateway.embeddings import EmbeddingsRequest
from gateway.jsontext import compact
from gateway.providers.base import Answer, BadUpstreamAnswer, StreamTranslator, UpstreamRequest, Usage, json_object
from gateway.providers.base import non_negative_int as count
from gateway.providers.wire import OpenAIWire
from gateway.settings import ProviderSettings


class EmbeddingsAdapter:
    def __init__(self, wire: OpenAIWire) -> None:
        self.wire = wire

    def build(
        self, request: EmbeddingsRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        body = dict(request.body)
        if self.wire.include_model:
            body["model"] = upstream_model
        else:
            body.pop("model", None)
        data = compact(body)
        return UpstreamRequest(self.wire.url(provider, upstream_model, "embeddings"), self.wire.headers(provider), data)

    def parse(self, body: bytes, request: EmbeddingsRequest) -> Answer:
        answer = json_object(body, "embeddings answer")
        data = answer.get("data")
        if not isinstance(data, list) or not all(_is_embedding(item) for item in data):
            raise BadUpstreamAnswer("embeddings answer has no list of embeddings")
        usage = answer.get("usage")
        prompt = count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
        return Answer(answer, body, Usage(prompt, 0) if prompt is not None else None)

    def translator(self, request: EmbeddingsRequest, *, keep_text: bool) -> StreamTranslator:
        raise BadUpstreamAnswer("embeddings do not stream")


def _is_embedding(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    vector = item.get("embedding")
    if isinstance(vector, str):
        return True  # encoding_format: base64
    return isinstance(vector, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vector)
