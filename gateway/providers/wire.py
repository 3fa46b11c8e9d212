"""Where an OpenAI-format request goes and how it authenticates: OpenAI's own API or an Azure OpenAI resource.

OpenAI   {base_url}/{path}                                                  Authorization: Bearer
Azure    {base_url}/openai/deployments/{deployment}/{path}?api-version=...  api-key
         (the deployment names the model; the Responses API is resource-wide: /openai/responses,
         the deployment named as `model` in the body)
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.settings import ProviderSettings


class OpenAIWire:
    include_model = True  # the body names the model

    def url(self, provider: ProviderSettings, upstream_model: str, path: str) -> str:
        return f"{provider.url.rstrip('/')}/{path}"

    def resource_url(self, provider: ProviderSettings, path: str) -> str:
        """A URL not under a deployment (stored responses)."""
        return f"{provider.url.rstrip('/')}/{path}"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def headers(self, provider: ProviderSettings, *, stream: bool = False) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        key = provider.api_key()
        if key:
            headers.update(self.auth_headers(key))
        return headers


class AzureWire(OpenAIWire):
    include_model = False

    def url(self, provider: ProviderSettings, upstream_model: str, path: str) -> str:
        deployment = quote(upstream_model, safe="")
        base = provider.url.rstrip("/")
        return f"{base}/openai/deployments/{deployment}/{path}?api-version={provider.api_version}"

    def resource_url(self, provider: ProviderSettings, path: str) -> str:
        return f"{provider.url.rstrip('/')}/openai/{path}?api-version={provider.api_version}"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}


WIRES: dict[str, OpenAIWire] = {"openai": OpenAIWire(), "azure_openai": AzureWire()}
