"""Where the local control plane keeps its binaries (cache) and its state."""

from __future__ import annotations

import os
from pathlib import Path

KUBERNETES_VERSION = "1.20.2"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    # The XDG spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/postmaster/kubernetes-1.20.2`` (the build lands in ``bin/`` below it)."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "postmaster" / f"kubernetes-{KUBERNETES_VERSION}"


def bin_dir() -> Path:
    return cache_dir() / "bin"


def state_dir() -> Path:
    """``$POSTMASTER_DEV_DIR``, else ``${XDG_STATE_HOME:-~/.local/state}/postmaster/dev``."""
    override = os.environ.get("POSTMASTER_DEV_DIR", "")
    if override:
        return Path(override).expanduser().absolute()
    return _xdg("XDG_STATE_HOME", ".local/state") / "postmaster" / "dev"


def tools_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/postmaster/bin``: where ensure_kubectl puts kubectl for the CLI."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "postmaster" / "bin"
