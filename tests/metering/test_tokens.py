"""Offline token counting: correct counts, no network, hash-checked files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.chat import from_body
from gateway.metering.tokens import ESTIMATE_FACTOR, TokenCounter, encoding_for

COUNTER = TokenCounter()


def test_counts_with_the_network_off(tmp_path: Path) -> None:
    """A fresh process, an empty cache folder, and every socket connection failing: counting still works."""
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network is off for this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from gateway.metering.tokens import TokenCounter
        counter = TokenCounter()
        print(counter.count_text("hello world", "gpt-4o"), counter.count_text("hello world", "gpt-4"))
        """
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "2"]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # both BPE files placed where tiktoken looks


def test_a_tampered_cache_file_is_replaced_from_the_verified_wheel(tmp_path: Path) -> None:
    from gateway.metering.tokens import install_offline_files

    folder = install_offline_files(tmp_path)
    victim = next(folder.iterdir())
    victim.write_bytes(b"tampered")
    install_offline_files(tmp_path)
    assert victim.read_bytes() != b"tampered"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4", None),
    ],
)
def test_encoding_per_model_family(model: str, encoding: str | None) -> None:
    assert encoding_for(model) == encoding


def test_message_overhead_is_counted_like_openai() -> None:
    one = from_body({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]})
    two = from_body(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello world"}, {"role": "user", "content": "hello world"}],
        }
    )
    # 3 to prime the reply, 3 per message, then role and content text
    assert COUNTER.prompt_tokens(one, "gpt-4o") == 3 + 3 + COUNTER.count_text("user\nhello world", "gpt-4o")
    assert COUNTER.prompt_tokens(two, "gpt-4o") > COUNTER.prompt_tokens(one, "gpt-4o") + 3


def test_special_token_text_is_ordinary_text() -> None:
    assert COUNTER.count_text("<|endoftext|>", "gpt-4o") > 1


def test_models_without_a_local_tokenizer_get_a_conservative_estimate() -> None:
    text = "The patient was discharged in a stable condition. " * 20
    assert COUNTER.count_text(text, "claude-sonnet-4") >= COUNTER.count_text(text, "gpt-4") * ESTIMATE_FACTOR
