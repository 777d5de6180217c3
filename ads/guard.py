"""The one place a command's failures become exit codes.

Every command (`main.py run`, and each generator's own subcommands) runs its body through
`run_guarded`, so the same failure reads the same everywhere: a `UserError` (bad config or
file, unknown model, a run folder that needs --resume) is one line and exit 2; a
`FatalModelError` (an endpoint that is down, a refused key) is one line and exit 1, or 2 when
the server refused the request itself; Ctrl-C says how to resume and exits 130. Anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable

from models.errors import FatalModelError, UserError


def is_user_error(e: BaseException) -> bool:
    # FileNotFoundError: a path the user named (a corpus, a tool file) that is not there
    return isinstance(e, (UserError, FileNotFoundError))


def is_fatal_model_error(e: BaseException) -> bool:
    """A model failure every later call would repeat: the run stops."""
    return isinstance(e, FatalModelError)


def fatal_exit_code(e: BaseException) -> int:
    """2 when the request itself was refused (key, model name, bad request: the user's to fix), else 1."""
    from models.openai_compat import EndpointRejectedError

    return 2 if isinstance(e, EndpointRejectedError) else 1


def run_guarded(body: Callable[[], int | None]) -> int:
    try:
        return int(body() or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; continue with the same command plus --resume", file=sys.stderr)
        return 130
    except Exception as e:
        if is_user_error(e):
            print(f"error: {e}", file=sys.stderr)
            return 2
        if is_fatal_model_error(e):  # one line naming the endpoint and status, never a table of zeros
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            return fatal_exit_code(e)
        raise
