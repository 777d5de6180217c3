"""The harness's error vocabulary, at the bottom layer so every layer above can raise it.

Three kinds, and a generator needs to know only the first two:

- `ModelError`: this one call failed (after the backend's own retries). A generator counts it
  as a rejection of the item and goes on.
- `FatalModelError`: every later call would fail the same way (an endpoint that is down, a key
  that is refused, a model file that does not exist). It is deliberately *not* a `ModelError`,
  so `except ModelError` lets it through and the run stops, without a copied re-raise.
- `UserError`: something the user must fix (a config key, a file, a folder). The CLI prints it
  as one line and exits 2, before or instead of writing anything.
"""
from __future__ import annotations


class UserError(Exception):
    """Anything the user must fix; reported as one line, exit code 2."""


class ConfigError(UserError, ValueError):
    """A config or input-file problem; the message names the file, line or key."""


class ModelError(RuntimeError):
    """One model call failed for good (after the backend's retries); the item is rejected."""


class FatalModelError(RuntimeError):
    """A failure that every following call would repeat: the run ends with one line and a
    non-zero exit instead of counting it as one more rejection."""


class ModelLoadError(FatalModelError, UserError):
    """A model that cannot be loaded as configured (no such file, wrong format, an adapter that
    does not fit, an endpoint config without base_url): the user's to fix, exit 2."""


class ModelNotFoundError(ModelLoadError):
    """A model name or file that the registry cannot resolve."""
