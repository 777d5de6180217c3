"""`--push-to-hub REPO`: upload an export folder with huggingface_hub, or refuse in one line.

Nothing is exported or uploaded unless both hold: a token in HF_TOKEN (or
HUGGING_FACE_HUB_TOKEN) and the Hub reachable. Both are checked before anything is written,
so a refusal leaves no half-written export behind; the check of the network is one HTTPS
connection with a short timeout, nothing else.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
TIMEOUT_S = 3.0


class HubUnavailable(Exception):
    """The upload cannot happen here; the message says why, in one line."""


def hub_token() -> str | None:
    return next((os.environ[v] for v in TOKEN_VARS if os.environ.get(v)), None)


def hub_reachable(endpoint: str | None = None, timeout: float = TIMEOUT_S) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    url = urlparse(endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_push(repo: str) -> str:
    """The token to use, or HubUnavailable naming what is missing."""
    if not repo or repo.count("/") != 1:
        raise HubUnavailable(f"--push-to-hub: {repo!r} is not a Hub dataset repo id (owner/name)")
    token = hub_token()
    if not token:
        raise HubUnavailable(f"--push-to-hub {repo}: no Hub token in the environment (set HF_TOKEN); nothing was "
                             f"written or uploaded")
    if not hub_reachable():
        raise HubUnavailable(f"--push-to-hub {repo}: the Hugging Face Hub is not reachable from here (offline or "
                             f"HF_HUB_OFFLINE=1); nothing was written or uploaded")
    return token


def push(folder: str, repo: str, token: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    info = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset",
                             commit_message="ads-harness export")
    return str(getattr(info, "commit_url", info))
