"""The seed's endpoint settings: BASE_URL, API_KEY, MODEL, TIMEOUT from `.env` and the environment.

The seed configures its OpenAI-compatible client with a `.env` file (python-dotenv) holding
those four keys; `main.py evolve` reads the same file so a seed user's setup works as is.
The file is parsed here rather than executed or sourced: only `KEY=VALUE` lines (optional
`export `, quotes, `#` comments) are understood, nothing is expanded or run, and only the
four keys are used. As with python-dotenv's default, a variable already set in the process
environment wins over the file.

The API key is the one secret: it is never put in the run config (which is written to
config.yaml), printed or logged. The config only names the variable that holds it
(`api_key_env: API_KEY`); `export_api_key` places a key read from the file into this
process's environment under that name, where models/openai_compat.py reads it per request.
Errors name the file and line, never the line's text, because that text may be the key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ads.config import ConfigError

KEYS = ("BASE_URL", "API_KEY", "MODEL", "TIMEOUT")
API_KEY_ENV = "API_KEY"
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


@dataclass(frozen=True)
class EndpointSettings:
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    timeout_s: float | None = None
    sources: tuple[str, ...] = ()  # "KEY from .env" / "KEY from environment", for the run banner (no values)

    def __repr__(self) -> str:  # a stray print of the settings must not show the key
        key = "set" if self.api_key else "unset"
        return (f"EndpointSettings(base_url={self.base_url!r}, api_key=<{key}>, model={self.model!r}, "
                f"timeout_s={self.timeout_s!r})")

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.base_url, self.api_key, self.model, self.timeout_s))


def _unquote(raw: str) -> str | None:
    """The value of a dotenv line: quoted ('...' or "...") verbatim, else up to an inline ` #` comment."""
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        q = raw[0]
        end = raw.find(q, 1)
        if end < 0:
            return None  # unterminated quote
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            return None
        return raw[1:end]
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def parse_dotenv(path: str | Path) -> dict[str, str]:
    """KEY -> VALUE for every assignment line of the file; a missing file is an empty dict."""
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the env file ({type(e).__name__})") from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = _LINE.match(s)
        value = _unquote(m.group(2)) if m else None
        if value is None:
            raise ConfigError(f"{p}:{n}: expected KEY=VALUE (e.g. BASE_URL=http://127.0.0.1:1234)")
        out[m.group(1)] = value
    return out


def endpoint_settings(env_file: str | Path | None = ".env",
                      environ: Mapping[str, str] | None = None) -> tuple[EndpointSettings, dict[str, str]]:
    """The four settings (environment over file) and the raw file values used (for export_api_key)."""
    environ = os.environ if environ is None else environ
    file_vals = parse_dotenv(env_file) if env_file else {}
    vals: dict[str, str] = {}
    src: dict[str, str] = {}
    for k in KEYS:
        if environ.get(k, "").strip():
            vals[k], src[k] = environ[k].strip(), "the environment"
        elif file_vals.get(k, "").strip():
            vals[k], src[k] = file_vals[k].strip(), str(env_file)
    timeout = None
    if "TIMEOUT" in vals:
        try:
            timeout = float(vals["TIMEOUT"])
        except ValueError:
            timeout = None
        if timeout is None or not 0 < timeout < float("inf"):
            raise ConfigError(f"TIMEOUT (from {src['TIMEOUT']}) must be a positive number of seconds, "
                              f"got {vals['TIMEOUT']!r}")
    settings = EndpointSettings(base_url=vals.get("BASE_URL"), api_key=vals.get("API_KEY"), model=vals.get("MODEL"),
                                timeout_s=timeout, sources=tuple(f"{k} from {v}" for k, v in src.items()))
    return settings, {k: v for k, v in file_vals.items() if k in KEYS}


def apply_to_generator(generator: dict[str, Any], s: EndpointSettings) -> dict[str, Any]:
    """The generator's model config with the settings on top (the answerer and judge reuse it when null)."""
    gen = dict(generator)
    if s.model is not None:
        gen["name"] = s.model
    if s.base_url is not None:
        gen["base_url"] = s.base_url
    if s.timeout_s is not None:
        gen["timeout_s"] = s.timeout_s
    if s.api_key is not None:
        gen["api_key_env"] = API_KEY_ENV  # the variable's name; the key itself never enters the config
    return gen


def export_api_key(s: EndpointSettings, environ: Any = None) -> None:
    """Make a key read from the file visible to the HTTP client, under API_KEY, without logging it."""
    environ = os.environ if environ is None else environ
    if s.api_key is not None and not environ.get(API_KEY_ENV, "").strip():
        environ[API_KEY_ENV] = s.api_key
