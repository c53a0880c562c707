"""Errors raised by the local control plane."""

from __future__ import annotations

from collections.abc import Sequence


class DevClusterError(RuntimeError):
    """The local control plane could not be built, started, reached or stopped."""


class MissingPrerequisitesError(DevClusterError):
    """Debian packages needed to build or run the local control plane are not installed."""

    def __init__(self, purpose: str, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)
        self.command = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(self.packages)
        super().__init__(
            f"missing Debian packages needed {purpose}: {', '.join(self.packages)}\n"
            f"install them as root with:\n    {self.command}\n"
            "(or, as root, set POSTMASTER_DEV_APT_INSTALL=1 / pass --install-deps to let postmaster run it)"
        )
