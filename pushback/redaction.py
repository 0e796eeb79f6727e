"""Secrets never reach a screen, a log or a file: every provider or Hub message passes `redact` first.

Providers echo keys back in their errors (OpenAI's 401 quotes part of it; a self-hosted server may
quote all of it), and LiteLLM or huggingface_hub may send a key the caller never named (read from
OPENAI_API_KEY, HF_TOKEN ...). So besides the secrets a caller passes, the values of environment
variables named like secrets are redacted, as is any word that shares a run of characters with one
(a key echoed in part), anything shaped like a well-known key, and the user:password of a URL.
"""
from __future__ import annotations

import os
import re

MASK = "***"
MIN_SECRET = 8  # shorter values are not treated as secrets: they would mask ordinary words
PIECE = 8  # a word sharing this many characters in a row with a secret is (part of) that secret
# Shaped like a key: the prefixes providers and the Hub use, or `api_...` long enough not to be a flag name.
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk|hf|gsk|xai)[-_][A-Za-z0-9_*.\-]{6,}|\bapi[-_][A-Za-z0-9_-]{12,}")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+:[^/@\s]+(?=@)")  # https://user:password@host
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
_WORD = re.compile(rf"[A-Za-z0-9_*.+/=\-]{{{PIECE},}}")


def environment_secrets() -> list[str]:
    """Values of environment variables named like secrets (`*_API_KEY`, `*_TOKEN`, `*_SECRET` ...)."""
    return [value for name, value in os.environ.items() if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET]


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (those given and those in the environment), in whole or in part, masked."""
    known = sorted({s for s in (*secrets, *environment_secrets()) if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(MASK, _KEY_LIKE.sub(MASK, text))
    if not known:
        return text
    pieces = {s[i:i + PIECE] for s in known for i in range(len(s) - PIECE + 1)}

    def masked(match: re.Match[str]) -> str:
        word = match.group()
        hit = any(word[i:i + PIECE] in pieces for i in range(len(word) - PIECE + 1))
        return MASK if hit else word

    return _WORD.sub(masked, text)
