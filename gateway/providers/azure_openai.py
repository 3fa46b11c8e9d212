"""Azure OpenAI: OpenAI's wire format on a deployment URL with `api-version` and an `api-key` header."""

from __future__ import annotations

from urllib.parse import quote

from gateway.chat import ChatRequest
from gateway.providers.base import Answer, UpstreamRequest
from gateway.providers.openai import OpenAIStream, parse_completion, upstream_body
from gateway.settings import ProviderSettings


class AzureOpenAIAdapter:
    def build(
        self, request: ChatRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        deployment = quote(upstream_model, safe="")
        base = provider.base_url.rstrip("/")
        url = f"{base}/openai/deployments/{deployment}/chat/completions?api-version={provider.api_version}"
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if request.stream else "application/json",
        }
        key = provider.api_key()
        if key:
            headers["api-key"] = key
        return UpstreamRequest(url, headers, upstream_body(request, upstream_model, max_tokens, include_model=False))

    def parse(self, body: bytes, request: ChatRequest) -> Answer:
        return parse_completion(body)

    def translator(self, request: ChatRequest, *, keep_text: bool) -> OpenAIStream:
        return OpenAIStream(client_wants_usage=request.include_usage, keep_text=keep_text)
