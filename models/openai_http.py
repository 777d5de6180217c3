"""HTTP helpers of the OpenAI-compatible client: the chat endpoint's URL, which URLs may carry a key
(and which key variable a config gets by default), a URL safe for logs, `Retry-After`, the token
estimate of a request, and the name sent with a JSON schema. Used by `models.openai_compat`.
"""
from __future__ import annotations

import email.utils
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from models.base import Message, approx_tokens
from models.errors import ModelLoadError


def chat_completions_url(base_url: str) -> str:
    """`http://h:8080` / `http://h:8080/v1` / `.../v1/chat/completions` -> the chat endpoint.

    Follows the OpenAI SDK convention that base_url includes the version path; a bare
    host gets `/v1` added, a URL that already ends in /chat/completions is used as is.
    """
    base = base_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ModelLoadError(f"base_url must be an http(s) URL such as http://127.0.0.1:8080/v1, got {safe_url(base)!r}")
    if base.endswith("/chat/completions"):
        return base
    if parts.path in {"", "/"}:
        base += "/v1"
    return base + "/chat/completions"


def is_insecure_remote(url: str) -> bool:
    """Plain http to a host that is not loopback (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    p = urlsplit(url)
    if p.scheme != "http":
        return False
    host = (p.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def default_key_env(base_url: str | None) -> str | None:
    """The key variable when a config names none: OPENAI_API_KEY for api.openai.com only. It used
    to be OPENAI_API_KEY for every base_url, so any server a config pointed at received it."""
    host = (urlsplit(base_url or "").hostname or "").lower()
    return "OPENAI_API_KEY" if host == "api.openai.com" else None


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment, so it can go into logs and errors."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if p.port:
            host = f"{host}:{p.port}"
        return urlunsplit((p.scheme, host, p.path, "", ""))
    except ValueError:
        return "<unparseable url>"


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI), or `Retry-After` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def estimate_request_tokens(messages: list[Message], max_tokens: int) -> int:
    """Tokens a request may consume, for the tokens-per-minute bucket (prompt + the full budget)."""
    return sum(approx_tokens(m.get("content") or "") + 4 for m in messages) + 3 + max(0, int(max_tokens))


def schema_name(schema: dict[str, Any]) -> str:
    title = schema.get("title") if isinstance(schema, dict) else None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(title or "response")).strip("_")[:64]
    return name or "response"
