"""Adapters by provider kind."""

from __future__ import annotations

from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.azure_openai import AzureOpenAIAdapter
from gateway.providers.base import Adapter
from gateway.providers.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "azure_openai": AzureOpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
}
