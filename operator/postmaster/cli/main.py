"""`postmaster`: run the operator, generate CRDs, run a local control plane, check DNS and SMTP."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from postmaster import __version__

# Sub-commands that live in their own modules, each exposing `register(subparsers)`.
_PLUGINS = ("postmaster.cli.dev", "postmaster.cli.check", "postmaster.cli.probe", "postmaster.cli.render")


CRD_DIRS = ("crds", "charts/postmaster/crds")


def _cmd_crds(args: argparse.Namespace) -> int:
    from postmaster.api.crd import render_crd_files

    files = render_crd_files()
    dirs = [Path(d) for d in (args.output or CRD_DIRS)]
    if args.check:
        stale = []
        for out in dirs:
            for name, text in files.items():
                path = out / name
                current = path.read_text(encoding="utf-8") if path.exists() else ""
                if current != text:
                    stale.append(str(path))
                    diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(path), name)
                    sys.stdout.writelines(diff)
        if stale:
            print(f"CRDs out of date: {', '.join(stale)}; run `postmaster crds`", file=sys.stderr)
            return 1
        print(f"{len(files)} CRDs in {', '.join(map(str, dirs))} match the models")
        return 0
    for out in dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            print(out / name)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import kopf

    import postmaster.handlers.operator  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, debug=args.debug, log_format=kopf.LogFormat.FULL)
    namespaces: Sequence[str] = args.namespace or ()
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=args.liveness,
    )
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from postmaster.cli.quickstart import prepare

    prepare(Path(args.root), examples=not args.no_examples)
    if args.no_operator:
        return 0
    return _cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postmaster", description=__doc__)
    parser.add_argument("--version", action="version", version=f"postmaster {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster account")
    run.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--liveness", default=None, help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true", help="log more")
    run.add_argument("--debug", action="store_true", help="log kopf's internals")
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser("crds", help="write crds/*.yaml from the API models")
    crds.add_argument(
        "-o", "--output", action="append", help=f"directory to write (repeatable; default: {' and '.join(CRD_DIRS)})"
    )
    crds.add_argument("--check", action="store_true", help="only check that the files match the models")
    crds.set_defaults(func=_cmd_crds)

    quick = sub.add_parser(
        "quickstart",
        help="what `make run` does: use your cluster or start a local one, install CRDs and examples, run",
    )
    quick.add_argument("--root", default=".", help="the checkout holding crds/ and examples/ (default: .)")
    quick.add_argument("--no-examples", action="store_true", help="do not apply examples/")
    quick.add_argument("--no-operator", action="store_true", help="prepare the cluster, then exit")
    quick.add_argument("-v", "--verbose", action="store_true", help="log more")
    quick.add_argument("--debug", action="store_true", help="log kopf's internals")
    quick.set_defaults(func=_cmd_quickstart, namespace=None, liveness=None)

    for module in _PLUGINS:
        register: Callable[[Any], None] = import_module(module).register
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func not in (_cmd_run, _cmd_quickstart):  # kopf configures logging for the operator itself
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    result = args.func(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
