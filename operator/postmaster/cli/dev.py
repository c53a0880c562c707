"""`postmaster dev ...` and the local control plane, which live in the development package ``postmaster_dev``.

That package (``dev/`` in the repository, distribution ``postmaster-dev``) is development tooling: ``make
venv`` installs it next to ``postmaster``, while ``pip install .`` and the container image leave it out. It
is imported here only when a command needs it. Where it is not installed, ``postmaster dev`` is still
listed, and it and ``postmaster quickstart`` (when no cluster answers) say in one line how to install it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postmaster_dev import DevCluster

DEV_PACKAGE = "postmaster_dev"
# What to install, and how, where it is missing; the messages below stay one line each.
INSTALL = "the development package postmaster-dev (in a checkout: `make venv`, or `pip install -e ./dev`)"


def _not_installed(exc: ModuleNotFoundError) -> bool:
    return exc.name == DEV_PACKAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dev`` and its verbs from the development package, or a ``dev`` that says how to install it."""
    try:
        from postmaster_dev.cli import register as register_dev
    except ModuleNotFoundError as exc:
        if not _not_installed(exc):
            raise
    else:
        register_dev(subparsers)
        return
    missing = subparsers.add_parser(
        "dev",
        help="a local Kubernetes control plane (not installed here)",
        description=f"The local control plane is not installed here. It is {INSTALL}.",
    )
    missing.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    missing.set_defaults(func=_cmd_not_installed)


def _cmd_not_installed(args: argparse.Namespace) -> int:
    print(f"postmaster dev: the local control plane is not installed here; it is {INSTALL}", file=sys.stderr)
    return 1


def local_control_plane() -> DevCluster:
    """Start the local control plane, or reuse the running one (``postmaster dev up``).

    Exits with a one-line message naming the install command when the development package is missing.
    """
    try:
        import postmaster_dev
    except ModuleNotFoundError as exc:
        if not _not_installed(exc):
            raise
        message = f"postmaster: no cluster answers, and the local control plane is not installed; it is {INSTALL}"
        raise SystemExit(message) from None
    return postmaster_dev.up()
