"""Azure OpenAI: OpenAI's wire format on a deployment URL with `api-version` and an `api-key` header."""

from __future__ import annotations

from gateway.providers.openai import OpenAIAdapter
from gateway.providers.wire import AzureWire


class AzureOpenAIAdapter(OpenAIAdapter):
    def __init__(self) -> None:
        super().__init__(AzureWire())
