"""Benchmark: how fast the operator brings many MailProviders to Ready, what it costs in memory, and
that a second pass over unchanged objects writes nothing.

    .venv/bin/python tests/bench/bench_operator.py [--providers 200] [--policies 100]

Uses the local control plane (`postmaster dev up`; started if needed) and runs the operator as a
separate process (`postmaster run -n <namespace>`), so its RSS is its own. Providers point at a custom
host with the probe off: this measures the operator, not the network. Prints the figures; exits 1 if
not every object became Ready or if the restart pass wrote anything.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dev"))  # postmaster_dev: the local control plane

import postmaster_dev
from postmaster import GROUP, VERSION
from postmaster.cli.install import install_crds

ROOT = Path(__file__).resolve().parents[2]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ready_count(custom: Any, ns: str, plural: str) -> int:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]
    return sum(
        1
        for i in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
    )


def versions(custom: Any, ns: str) -> dict[str, str]:
    out = {}
    for plural in ("mailproviders", "restrictionpolicies"):
        for item in custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]:
            out[f"{plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def start_operator(ns: str, kubeconfig: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.Popen(
        [sys.executable, "-m", "postmaster", "run", "-n", ns],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait(check: Any, total: int, deadline: float) -> float:
    started = time.monotonic()
    while time.monotonic() < deadline:
        if check() >= total:
            return time.monotonic() - started
        time.sleep(0.25)
    return float("nan")


def restart_writes(
    custom: Any, ns: str, operator: subprocess.Popen[bytes], kubeconfig: Path, providers: int
) -> tuple[int, subprocess.Popen[bytes]]:
    """A restart resumes every object: nothing changed, so nothing may be written. First the first pass
    settles (kopf records what it handled right after the handlers finish)."""
    before = versions(custom, ns)
    for _ in range(60):
        time.sleep(1)
        settled = versions(custom, ns)
        if settled == before:
            break
        before = settled
    operator.terminate()
    operator.wait(30)
    operator = start_operator(ns, kubeconfig)
    time.sleep(max(10.0, providers / 20))
    after = versions(custom, ns)
    changed = [k for k, v in before.items() if after.get(k) != v]
    if changed:
        print("rewritten, e.g.:", ", ".join(changed[:5]))
    return len(changed), operator


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--policies", type=int, default=100)
    args = parser.parse_args()

    cluster = postmaster_dev.up()
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    install_crds(api, ROOT / "crds")
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    operator = start_operator(ns, cluster.kubeconfig)
    try:
        time.sleep(2)
        idle = rss_mib(operator.pid)
        started = time.monotonic()
        for i in range(args.providers):
            core.create_namespaced_secret(
                ns, {"metadata": {"name": f"creds-{i}"}, "stringData": {"password": "x" * 16}}
            )
            spec = {
                "host": f"smtp{i}.example.net",
                "port": 587,
                "from": {"address": f"app{i}@example.net"},
                "auth": {"credentialsSecretRef": {"name": f"creds-{i}"}, "username": f"user{i}"},
                "probe": {"enabled": False},
            }
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MailProvider",
                "metadata": {"name": f"mp-{i}"},
                "spec": spec,
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "mailproviders", body)
        for i in range(args.policies):
            spec = {
                "providerRef": {"name": f"mp-{i % args.providers}"},
                "localDomains": ["example.com"],
                "send": {"mode": "LocalDomainAndSubdomains", "exceptions": ["*@partner.example"]},
            }
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RestrictionPolicy", "metadata": {"name": f"rp-{i}"},
                    "spec": spec}  # fmt: skip
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "restrictionpolicies", body)
        created = time.monotonic() - started
        deadline = time.monotonic() + 600
        providers_s = wait(lambda: ready_count(custom, ns, "mailproviders"), args.providers, deadline) + created
        policies_s = wait(lambda: ready_count(custom, ns, "restrictionpolicies"), args.policies, deadline) + created
        busy = rss_mib(operator.pid)

        rewritten, operator = restart_writes(custom, ns, operator, cluster.kubeconfig, args.providers)
        print(f"objects: {args.providers} MailProviders (+ their Secrets), {args.policies} RestrictionPolicies")
        print(f"created through the API in {created:.1f}s")
        print(f"all MailProviders Ready after {providers_s:.1f}s ({args.providers / providers_s:.0f}/s)")
        print(f"all RestrictionPolicies Ready after {policies_s:.1f}s")
        print(f"operator RSS: {idle:.0f} MiB idle, {busy:.0f} MiB with {args.providers + args.policies} objects")
        print(f"restart over unchanged objects: {rewritten} of {args.providers + args.policies} objects written")
        ok = not math.isnan(providers_s) and not math.isnan(policies_s) and rewritten == 0
        print("OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        operator.terminate()
        operator.wait(30)
        core.delete_namespace(ns)


if __name__ == "__main__":
    sys.exit(main())
