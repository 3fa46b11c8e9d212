"""Adapters by (client API, provider kind): which upstreams can serve which endpoint, and how.

    endpoint           openai / azure_openai          anthropic                        bedrock
    chat.completions   pass-through                   translated (anthropic.py)        Converse (bedrock.py)
    embeddings         pass-through                   --                               --
    responses          pass-through                   -- (stored state lives at OpenAI) --
    messages           translated (messages_openai)   pass-through (anthropic_messages) Converse, via the OpenAI form

A route whose provider kind cannot serve the endpoint is skipped. A model serves the endpoints its
provider entries list in `endpoints`; by default every endpoint its kinds can serve, except that a
model whose name says "embed" serves only embeddings and other models never do.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.anthropic_messages import MessagesAdapter
from gateway.providers.azure_openai import AzureOpenAIAdapter
from gateway.providers.base import Adapter
from gateway.providers.bedrock import BedrockAdapter, BedrockMessagesAdapter
from gateway.providers.messages_openai import MessagesViaOpenAI
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.openai_embeddings import EmbeddingsAdapter
from gateway.providers.openai_responses import ResponsesAdapter
from gateway.providers.wire import WIRES
from gateway.settings import ENDPOINTS, ProviderSettings

STORED: dict[str, ResponsesAdapter] = {kind: ResponsesAdapter(wire) for kind, wire in WIRES.items()}
ADAPTERS: dict[str, dict[str, Adapter[Any]]] = {
    "chat.completions": {
        "openai": OpenAIAdapter(),
        "azure_openai": AzureOpenAIAdapter(),
        "anthropic": AnthropicAdapter(),
        "bedrock": BedrockAdapter(),
    },
    "embeddings": {kind: EmbeddingsAdapter(wire) for kind, wire in WIRES.items()},
    "responses": {kind: adapter for kind, adapter in STORED.items()},
    "messages": {
        **{kind: MessagesViaOpenAI(wire) for kind, wire in WIRES.items()},
        "anthropic": MessagesAdapter(),
        "bedrock": BedrockMessagesAdapter(),
    },
}
KINDS = frozenset(ADAPTERS["chat.completions"])


def adapter_for(endpoint: str, kind: str) -> Adapter[Any] | None:
    return ADAPTERS.get(endpoint, {}).get(kind)


def serves(provider: ProviderSettings, model: str, endpoint: str) -> bool:
    """Whether this provider entry serves `model` on `endpoint`."""
    if model not in provider.models or adapter_for(endpoint, provider.kind) is None:
        return False
    listed = provider.endpoints.get(model)
    if listed is not None:
        return endpoint in listed
    return (endpoint == "embeddings") == ("embed" in model.lower())


def model_endpoints(providers: list[ProviderSettings]) -> dict[str, list[str]]:
    """Every served model with the endpoints it serves (for /v1/models), in ENDPOINTS order."""
    found: dict[str, list[str]] = {}
    for model in sorted({m for p in providers for m in p.models}):
        found[model] = [e for e in ENDPOINTS if any(serves(p, model, e) for p in providers)]
    return found
