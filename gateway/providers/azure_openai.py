"""Azure OpenAI: OpenAI's wire format on a deployment URL with `api-version` and an `api-key` header."""

from __future__ import annotations

from urllib.parse import quote

from gateway.providers.openai import OpenAIAdapter
from gateway.settings import ProviderSettings


class AzureOpenAIAdapter(OpenAIAdapter):
    include_model = False  # the deployment in the URL names the model

    def url(self, provider: ProviderSettings, upstream_model: str) -> str:
        deployment = quote(upstream_model, safe="")
        base = provider.base_url.rstrip("/")
        return f"{base}/openai/deployments/{deployment}/chat/completions?api-version={provider.api_version}"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}
