"""Benchmark: the operator at scale, measured as a black box from the API server's side.

    .venv/bin/python tests/bench/bench_scale.py [--shape a|b|both] [--domains 1000] [--idle-seconds 120]
                                                [--skip-10k] [--json build/bench_scale.json]

Two shapes, each in its own namespace, created at concurrency 16 through the API:

* (a) 50 MailProviders (preset sendgrid, probe off, a credentials Secret each), 1,000 SendingDomains (20 per
  provider) and 5 RestrictionPolicies;
* (b) 1 MailProvider, 1,000 SendingDomains and 1 RestrictionPolicy.

Every domain can become Ready: one NSD on a loopback port serves a zone per domain (``dNNNNN.bench``: SPF
``include:sendgrid.net``, CNAMEs ``s1``/``s2._domainkey`` to DKIM keys in zone ``sendgrid.net``, DMARC ``p=none``
with reports to ``reports.bench``, which authorises them), plus ``sendgrid.net`` and ``bench`` (so DMARC's tree
walk ends inside NSD). The SendingDomains name that NSD in ``spec.dns.nameservers``. The CLI
(``postmaster check domain``) checks two of the zones before anything else.

Per shape:

1. the floor: a bare client (aiohttp, concurrency 16, no operator running) creates the same objects and their
   Secrets and patches each object's status once with Ready=True; from the first create to the last patch;
2. Postmaster: the operator runs (``python -m postmaster run -n <namespace>``, a subprocess); the same objects are
   created; from the first create until every object has Ready=True, seen through one LIST+WATCH per kind;
3. API requests per object, counted by kube-apiserver (``apiserver_request_total`` from its ``/metrics``) before
   and after each window, less the benchmark's own requests (counted here): until Ready, while settling (after
   Ready, until the server has seen no write for ``--settle-seconds``, at most 300 s), idle and across a restart,
   by verb and resource;
4. idle: ``--idle-seconds`` (120) with nothing changing;
5. restart: SIGTERM, start again over the unchanged objects, ``--restart-seconds`` (30): writes, and whether any
   object's conditions changed (lastTransitionTime included); if some are not Ready at the window's end, how long
   until they all are again; then, as the window may end before the operator has been through every object, the
   writes after it until there is none for ``--settle-seconds`` (at most 300 s), and the conditions compared again;
6. memory: the operator's VmRSS and VmHWM (/proc/<pid>/status) with 1,000 SendingDomains, and in a last phase
   with 10,000 SendingDomains (50 providers, 200 domains each, 5 policies; ``--skip-10k`` leaves it out).

The figures are reported, not asserted; the goals are printed next to them. Exits non-zero only if the objects of
shape (a) or (b) never became Ready within ``--deadline`` (the 10,000-domain phase is about memory: it reports how
far it got). A full run takes about 35 minutes on 2 cores with the operator of December 2026 (which does not reach
Ready with 10,000 domains within the deadline); ``--shape a --skip-10k --idle-seconds 30`` takes about 6.

By default the benchmark starts a private local control plane (``devcluster.up()`` with its own POSTMASTER_DEV_DIR
under build/) and stops it at the end: kube-apiserver's counters cannot tell clients apart, so a control plane
shared with other test runs would count their requests too. ``--shared-cluster`` uses the usual one anyway.

Counting, and what it cannot separate:

* ``apiserver_request_total`` has no client or namespace label. Its ``contentType`` label splits the Python clients
  (the operator and this benchmark: ``application/json``) from kube-controller-manager and the API server's own
  loopback requests (protobuf, even for custom resources). Only the JSON side is reported; the benchmark's own
  requests are subtracted exactly. The floor's window checks the method: there the JSON side must equal the
  benchmark's own count.
* WATCH requests are counted by the server when they end; a watch started in a window is counted as the ones
  that ended in it plus the change of ``apiserver_longrunning_gauge`` (namespaced scope only: the controller
  manager's watches are cluster-wide).
* Bytes: ``apiserver_response_sizes`` (GET/LIST bodies) and ``apiserver_watch_events_sizes`` (watch events) have no
  content-type label, so they include the controller manager's few (metadata-only, protobuf) reads and events; the
  benchmark's own bytes are subtracted, approximately for watch events.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kubernetes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.dns import NsdServer

# The local control plane, imported in this one place so that a move of devcluster is a one-line change here.
import postmaster_dev as devcluster
from postmaster.cli.install import install_crds

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "postmaster.dev", "v1alpha1"
SPF_INCLUDE = "sendgrid.net"
REPORT_ADDRESS = "mailto:dmarc@reports.bench"
CONCURRENCY = 16
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY")
READ_VERBS = ("GET", "LIST", "WATCH")
GOAL_READY_RATIO = 2.0
GOAL_WRITES_PER_OBJECT = 3.0
GOAL_RSS_10K_MIB = 150.0
SETTLE_LIMIT = 300.0

Key = tuple[str, str, str, str]
"""(verb, group, resource, subresource), as apiserver_request_total labels them."""
K = TypeVar("K")


# --------------------------------------------------------------------------------------------------
# What is created
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


SECRET = Kind("", "v1", "secrets", "Secret")
PROVIDER = Kind(GROUP, VERSION, "mailproviders", "MailProvider")
DOMAIN = Kind(GROUP, VERSION, "sendingdomains", "SendingDomain")
POLICY = Kind(GROUP, VERSION, "restrictionpolicies", "RestrictionPolicy")
WATCHED = (PROVIDER, DOMAIN, POLICY)


@dataclass(frozen=True)
class Shape:
    key: str
    providers: int
    domains: int
    policies: int

    @property
    def objects(self) -> int:
        """The custom objects: what "per object" divides by (the Secrets are inputs, not counted)."""
        return self.providers + self.domains + self.policies

    def describe(self) -> str:
        return (
            f"{counted(self.providers, 'MailProvider')} (+{counted(self.providers, 'Secret')}), "
            f"{counted(self.domains, 'SendingDomain')}, {counted(self.policies, 'RestrictionPolicy')}"
        )


def counted(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"


def domain_name(n: int) -> str:
    return f"d{n:05d}.bench"


def manifests(shape: Shape, nameserver: str) -> list[tuple[Kind, dict[str, Any]]]:
    """Creation order: the Secrets, the providers, then domains and policies."""
    out: list[tuple[Kind, dict[str, Any]]] = []

    def add(kind: Kind, name: str, **content: Any) -> None:
        out.append((kind, {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}, **content}))

    for i in range(shape.providers):
        add(SECRET, f"creds-{i}", type="Opaque", stringData={"password": f"SG.bench-placeholder-{i:04d}"})
    for i in range(shape.providers):
        spec = {
            "preset": "sendgrid",
            "from": {"address": f"no-reply-{i}@example.com"},
            "auth": {"credentialsSecretRef": {"name": f"creds-{i}"}},
            "probe": {"enabled": False},
        }
        add(PROVIDER, f"mp-{i}", spec=spec)
    per_provider = -(-shape.domains // shape.providers)
    for n in range(shape.domains):
        spec = {
            "domain": domain_name(n),
            "providerRef": {"name": f"mp-{n // per_provider}"},
            "dmarc": {"reportAddresses": [REPORT_ADDRESS]},
            "dns": {"nameservers": [nameserver]},
        }
        add(DOMAIN, f"sd-{n:05d}", spec=spec)
    step = max(1, shape.providers // max(1, shape.policies))
    for i in range(shape.policies):
        spec = {
            "providerRef": {"name": f"mp-{(i * step) % shape.providers}"},
            "localDomains": ["example.com"],
            "send": {"mode": "LocalDomainAndSubdomains"},
        }
        add(POLICY, f"rp-{i}", spec=spec)
    return out


# --------------------------------------------------------------------------------------------------
# DNS: one NSD serving every domain's zone
# --------------------------------------------------------------------------------------------------


def dkim_txt() -> str:
    """A DKIM key record (RSA 2048) as a zone-file TXT value: quoted strings of at most 255 bytes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    value = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def zones(count: int) -> dict[str, str]:
    """``dNNNNN.bench`` for n < count, ready for preset sendgrid; ``sendgrid.net``, ``reports.bench``, ``bench``."""
    key = dkim_txt()
    provider = ['@ TXT "v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 ~all"']
    out = {"bench": "", "reports.bench": '*._report._dmarc TXT "v=DMARC1"'}
    for n in range(count):
        account = f"u{n:05d}.wl{n:05d}"  # SendGrid's targets are per account and domain: s1.domainkey.u<id>.wl<id>
        provider += [f"s1.domainkey.{account} TXT {key}", f"s2.domainkey.{account} TXT {key}"]
        out[domain_name(n)] = "\n".join(
            [
                f'@ TXT "v=spf1 include:{SPF_INCLUDE} ~all"',
                f"s1._domainkey CNAME s1.domainkey.{account}.{SPF_INCLUDE}.",
                f"s2._domainkey CNAME s2.domainkey.{account}.{SPF_INCLUDE}.",
                f'_dmarc TXT "v=DMARC1; p=none; rua={REPORT_ADDRESS}"',
            ]
        )
    out[SPF_INCLUDE] = "\n".join(provider)
    return out


def preflight(nameserver: str, domains: Sequence[str]) -> None:
    """The CLI checks a few zones as the operator would: a zone mistake should cost seconds, not the deadline."""
    argv = [sys.executable, "-m", "postmaster", "check", "domain", *domains, "--provider", "sendgrid"]
    argv += ["--report-address", REPORT_ADDRESS, "--nameserver", nameserver]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == 0:
        print(f"zones check: `postmaster check domain {' '.join(domains)} --provider sendgrid` says Ready")
    elif done.returncode == 1:
        raise SystemExit(f"the zones do not make the domains Ready (postmaster check domain):\n{done.stdout}")
    else:  # the CLI changed or DNS did not answer: the operator may still manage; say so and go on
        print(f"warning: postmaster check domain exited {done.returncode}:\n{done.stdout}{done.stderr}")


# --------------------------------------------------------------------------------------------------
# The API, through aiohttp, counting every request the benchmark makes
# --------------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text[:300]}")
        self.status = status


class Api:
    """The benchmark's client: every request is counted by the key kube-apiserver files it under."""

    def __init__(self, kubeconfig: Path) -> None:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
        self.server = config.host.rstrip("/")
        self.ssl = ssl.create_default_context(cafile=config.ssl_ca_cert or None)
        if config.cert_file and config.key_file:
            self.ssl.load_cert_chain(config.cert_file, config.key_file)
        if not config.verify_ssl:
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
        # identity: byte counts must be the bodies' own sizes, as the server's response-size metric sees them
        self.headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        settings: dict[str, Any] = dict(config.auth_settings())
        for setting in settings.values():  # the bearer token, however this client version names it
            if setting.get("in") == "header" and setting.get("value"):
                self.headers[setting["key"]] = setting["value"]
        self.requests: Counter[Key] = Counter()
        self.read_bytes: Counter[Key] = Counter()
        self.watch_bytes: Counter[tuple[str, str]] = Counter()  # (group, kind)
        self.watch_events: Counter[tuple[str, str]] = Counter()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(ssl=self.ssl, limit=CONCURRENCY + 16)
        self._session = aiohttp.ClientSession(
            base_url=self.server, headers=self.headers, connector=connector, auto_decompress=False
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def _json(
        self, key: Key, method: str, path: str, *, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        for attempt in range(5):
            self.requests[key] += 1
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": content_type} if data is not None else None
            async with self.session.request(method, path, data=data, headers=headers) as response:
                raw = await response.read()
                if key[0] in READ_VERBS:
                    self.read_bytes[key] += len(raw)
                if response.status < 300:
                    result: dict[str, Any] = json.loads(raw)
                    return result
                if response.status in (429, 500, 503, 504) and attempt < 4:
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                raise ApiError(method, path, response.status, raw.decode(errors="replace"))
        raise AssertionError("unreachable")

    async def create(self, kind: Kind, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json(("POST", kind.group, kind.plural, ""), "POST", kind.path(namespace), body=body)

    async def patch_status(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        key = ("PATCH", kind.group, kind.plural, "status")
        path = kind.path(namespace, name, "status")
        return await self._json(key, "PATCH", path, body=patch, content_type="application/merge-patch+json")

    async def list(self, kind: Kind, namespace: str) -> dict[str, Any]:
        return await self._json(("LIST", kind.group, kind.plural, ""), "GET", kind.path(namespace))

    async def watch(self, kind: Kind, namespace: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """The events of one WATCH request, until the server ends it."""
        self.requests[("WATCH", kind.group, kind.plural, "")] += 1
        params = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
        params["timeoutSeconds"] = "3600"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(kind.path(namespace), params=params, timeout=timeout) as response:
            if response.status >= 300:
                raise ApiError("WATCH", kind.path(namespace), response.status, await response.text())
            pending = b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.watch_bytes[(kind.group, kind.kind)] += len(line)
                        self.watch_events[(kind.group, kind.kind)] += 1
                        yield json.loads(line)

    async def metrics(self) -> str:
        """GET /metrics: a non-resource request (text/plain), which the JSON-side counts never include."""
        async with self.session.get("/metrics", headers={"Accept": "text/plain"}) as response:
            if response.status != 200:
                raise ApiError("GET", "/metrics", response.status, await response.text())
            return await response.text()

    def own(self) -> OwnCounts:
        return OwnCounts(Counter(self.requests), Counter(self.read_bytes), Counter(self.watch_bytes))


@dataclass(frozen=True)
class OwnCounts:
    requests: Counter[Key]
    read_bytes: Counter[Key]
    watch_bytes: Counter[tuple[str, str]]


# --------------------------------------------------------------------------------------------------
# kube-apiserver's counters
# --------------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_WANTED = (
    "apiserver_request_total{",
    "apiserver_longrunning_gauge{",
    "apiserver_response_sizes_sum{",
    "apiserver_watch_events_total{",
    "apiserver_watch_events_sizes_sum{",
)


def client_class(content_type: str) -> str:
    """json: the Python clients (operator, benchmark); kube: controller manager and loopback (protobuf)."""
    if content_type.startswith("application/json"):
        return "json"
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        return "kube"
    return "other"


@dataclass
class Snapshot:
    """The server's counters at one moment, and the benchmark's own at the same moment."""

    at: float
    requests: Counter[tuple[str, str, str, str, str, str]]  # (class, code, verb, group, resource, subresource)
    watches_open: Counter[Key]  # namespaced WATCH requests open now
    response_bytes: Counter[Key]
    watch_events: Counter[tuple[str, str]]  # (group, kind)
    watch_bytes: Counter[tuple[str, str]]
    own: OwnCounts


def parse_metrics(text: str, at: float, own: OwnCounts) -> Snapshot:
    snap = Snapshot(at, Counter(), Counter(), Counter(), Counter(), Counter(), own)
    for line in text.splitlines():
        if not line.startswith(_WANTED):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels_text, value_text = match.groups()
        labels = dict(_LABEL.findall(labels_text or ""))
        value = int(float(value_text))  # counts, and byte sums of whole bytes
        key: Key = (
            labels.get("verb", ""),
            labels.get("group", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
        )
        if name == "apiserver_request_total":
            if not key[2]:
                key = (key[0], "", "(non-resource)", "")  # discovery, /metrics, /readyz: the path is not labelled
            snap.requests[(client_class(labels.get("contentType", "")), labels.get("code", ""), *key)] += value
        elif name == "apiserver_longrunning_gauge":
            if labels.get("verb") == "WATCH" and labels.get("scope") == "namespace":
                snap.watches_open[key] += value
        elif name == "apiserver_response_sizes_sum":
            snap.response_bytes[key] += value
        elif name == "apiserver_watch_events_total":
            snap.watch_events[(labels.get("group", ""), labels.get("kind", ""))] += value
        elif name == "apiserver_watch_events_sizes_sum":
            snap.watch_bytes[(labels.get("group", ""), labels.get("kind", ""))] += value
    return snap


def _delta(after: Counter[K], before: Counter[K]) -> Counter[K]:
    out: Counter[K] = Counter()
    for key in set(after) | set(before):
        value = after.get(key, 0) - before.get(key, 0)
        if value:
            out[key] = value
    return out


@dataclass
class Window:
    """What happened on the server between two snapshots, the benchmark's own requests taken out."""

    name: str
    seconds: float
    requests: Counter[Key]  # JSON clients less the benchmark: the operator
    server_json: Counter[Key]  # JSON clients as the server counted them (operator + benchmark)
    own: Counter[Key]
    errors: Counter[tuple[str, str, str, str]]  # (code, verb, resource, subresource) of non-2xx JSON requests
    kube: int  # requests of the controller manager and the API server's loopback, for context
    read_bytes: float
    watch_bytes: float

    @property
    def writes(self) -> int:
        return int(sum(v for k, v in self.requests.items() if k[0] not in READ_VERBS))

    @property
    def reads(self) -> int:
        return int(sum(v for k, v in self.requests.items() if k[0] in READ_VERBS))

    def as_dict(self, objects: int) -> dict[str, Any]:
        def rows(counts: Counter[Key]) -> list[dict[str, Any]]:
            return [
                {
                    "verb": k[0],
                    "group": k[1],
                    "resource": k[2],
                    "subresource": k[3],
                    "count": int(v),
                    "perObject": round(v / objects, 3),
                }
                for k, v in sorted(counts.items())
            ]

        return {
            "seconds": round(self.seconds, 2),
            "writes": self.writes,
            "reads": self.reads,
            "writesPerObject": round(self.writes / objects, 3),
            "readsPerObject": round(self.reads / objects, 3),
            "requests": rows(self.requests),
            "serverCountedJsonClients": rows(self.server_json),
            "benchmarkOwn": rows(self.own),
            "nonSuccess": [
                {"code": k[0], "verb": k[1], "resource": k[2], "subresource": k[3], "count": int(v)}
                for k, v in sorted(self.errors.items())
            ],
            "kubeComponentsRequests": self.kube,
            "readBytes": int(self.read_bytes),
            "watchEventBytes": int(self.watch_bytes),
        }


def window(name: str, before: Snapshot, after: Snapshot) -> Window:
    raw = _delta(after.requests, before.requests)
    server_json: Counter[Key] = Counter()
    errors: Counter[tuple[str, str, str, str]] = Counter()
    kube = 0
    for (cls, code, *rest), value in raw.items():
        key: Key = (rest[0], rest[1], rest[2], rest[3])
        if cls == "json":
            server_json[key] += value
            if not code.startswith("2"):
                errors[(code, key[0], key[2], key[3])] += value
        elif cls == "kube":
            kube += int(value)
    # A WATCH is counted when it ends: those started here = those ended here + the change in those open.
    for key, value in _delta(after.watches_open, before.watches_open).items():
        server_json[key] += value
    own = _delta(after.own.requests, before.own.requests)
    requests: Counter[Key] = Counter()
    for key in set(server_json) | set(own):
        if server_json.get(key, 0) != own.get(key, 0):
            requests[key] = server_json.get(key, 0) - own.get(key, 0)
    read_bytes = sum(v for k, v in _delta(after.response_bytes, before.response_bytes).items() if k[0] in READ_VERBS)
    read_bytes -= sum(_delta(after.own.read_bytes, before.own.read_bytes).values())
    watch_bytes = sum(_delta(after.watch_bytes, before.watch_bytes).values())
    watch_bytes -= sum(_delta(after.own.watch_bytes, before.own.watch_bytes).values())
    return Window(name, after.at - before.at, requests, server_json, own, errors, kube, read_bytes, watch_bytes)


class Metrics:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def snapshot(self) -> Snapshot:
        text = await self.api.metrics()
        return parse_metrics(text, time.monotonic(), self.api.own())

    async def namespaced_watches(self, group: str) -> Counter[str]:
        snap = await self.snapshot()
        out: Counter[str] = Counter()
        for (_, g, resource, _), value in snap.watches_open.items():
            if g == group:
                out[resource] += int(value)
        return out


def operator_side_view(url: str | None) -> dict[str, float] | None:
    """The optional hook for the operator's own request counts: Prometheus text at `url` (--operator-metrics).

    The operator exposes no such endpoint yet, so by default this returns None and nothing is reported. When
    given, every sample is returned as is (counters are differenced by the caller); nothing is estimated.
    """
    if not url:
        return None
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a URL the person running this gave
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            with contextlib.suppress(ValueError):
                samples[line.rsplit(None, 1)[0]] = float(match.group(3))
    return samples


def operator_side_delta(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    return {k: after[k] - before.get(k, 0.0) for k in sorted(after) if after[k] != before.get(k, 0.0)}


# --------------------------------------------------------------------------------------------------
# Watching Ready
# --------------------------------------------------------------------------------------------------


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Tracker:
    """Every watched object's Ready, from the benchmark's one LIST+WATCH per kind."""

    def __init__(self, expected: dict[str, int]) -> None:
        self.expected = expected  # plural -> how many
        self.total = sum(expected.values())
        self.ready: set[tuple[str, str]] = set()
        self.ready_by_kind: Counter[str] = Counter()
        self.all_ready = asyncio.Event()  # set once, the first time every object is Ready
        self.all_ready_now = asyncio.Event()  # set while every object is Ready
        self.all_ready_at: float | None = None
        self.kind_ready_at: dict[str, float] = {}
        self.modified: Counter[str] = Counter()  # plural -> MODIFIED events
        self.changed_objects: set[tuple[str, str]] = set()
        self.last_change = time.monotonic()

    def apply(self, plural: str, event: str, obj: dict[str, Any]) -> None:
        key = (plural, obj["metadata"]["name"])
        self.last_change = time.monotonic()
        if event == "MODIFIED":
            self.modified[plural] += 1
            self.changed_objects.add(key)
        if event != "DELETED" and is_ready(obj):
            if key not in self.ready:
                self.ready.add(key)
                self.ready_by_kind[plural] += 1
        elif key in self.ready:
            self.ready.discard(key)
            self.ready_by_kind[plural] -= 1
        now = time.monotonic()
        if plural not in self.kind_ready_at and self.ready_by_kind[plural] >= self.expected.get(plural, 0) > 0:
            self.kind_ready_at[plural] = now
        if len(self.ready) >= self.total:
            self.all_ready_now.set()
            if self.all_ready_at is None:
                self.all_ready_at = now
                self.all_ready.set()
        else:
            self.all_ready_now.clear()

    def mark(self) -> None:
        """Start counting changes afresh (for the idle window)."""
        self.modified.clear()
        self.changed_objects.clear()

    def count(self, plural: str) -> int:
        return self.ready_by_kind[plural]


async def watch_kind(api: Api, kind: Kind, namespace: str, tracker: Tracker, started: asyncio.Event) -> None:
    resource_version: str | None = None
    while True:
        try:
            if resource_version is None:
                listing = await api.list(kind, namespace)
                for item in listing["items"]:
                    tracker.apply(kind.plural, "ADDED", item)
                resource_version = listing["metadata"]["resourceVersion"]
                started.set()
            async for event in api.watch(kind, namespace, resource_version):
                obj = event["object"]
                if event["type"] == "ERROR":  # 410 Gone: list again
                    resource_version = None
                    break
                resource_version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    tracker.apply(kind.plural, event["type"], obj)
        except (aiohttp.ClientError, TimeoutError, ApiError) as exc:
            print(f"  (watch of {kind.plural} restarts: {exc})")
            await asyncio.sleep(1)


# --------------------------------------------------------------------------------------------------
# The operator as a black box
# --------------------------------------------------------------------------------------------------


@dataclass
class Memory:
    """The operator's memory, and the CPU time it has used since it started (user + system)."""

    rss_mib: float
    hwm_mib: float
    cpu_seconds: float = 0.0

    def __str__(self) -> str:
        return f"RSS {self.rss_mib:.0f} MiB (peak {self.hwm_mib:.0f}), CPU {self.cpu_seconds:.1f} s"


def memory(pid: int) -> Memory:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    # /proc/PID/stat: utime and stime are the 14th and 15th fields, after the parenthesised command name.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return Memory(values.get("VmRSS", 0.0), values.get("VmHWM", 0.0), cpu)


class Operator:
    """`python -m postmaster run -n <namespace>`, its output in a log file."""

    def __init__(self, namespace: str, kubeconfig: Path, log_dir: Path) -> None:
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"operator-{self.namespace}-{self.starts}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "postmaster", "run", "-n", self.namespace],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                print("  (the operator did not stop within 60 s of SIGTERM: killed)")
                self.process.kill()
                self.process.wait()
        self.process = None

    def memory(self) -> Memory:
        return memory(self.pid)


async def wait_for_watches(metrics: Metrics, baseline: Counter[str], within: float, alive: Callable[[], bool]) -> bool:
    """Until the server shows one more namespaced WATCH than `baseline` on each of the three kinds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if not alive():
            return False
        watching = await metrics.namespaced_watches(GROUP)
        if all(watching.get(k.plural, 0) > baseline.get(k.plural, 0) for k in WATCHED):
            return True
        await asyncio.sleep(0.25)
    return False


# --------------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------------


async def pool(
    items: Iterable[tuple[Kind, dict[str, Any]]], work: Callable[[Kind, dict[str, Any]], Awaitable[object]]
) -> None:
    """`work(kind, body)` for every item, CONCURRENCY at a time, in order of submission."""
    iterator: Iterator[tuple[Kind, dict[str, Any]]] = iter(items)

    async def worker() -> None:
        for kind, body in iterator:
            await work(kind, body)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def ready_status(generation: int) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "the floor's one status write",
        "lastTransitionTime": now,
        "observedGeneration": generation,
    }
    return {"status": {"observedGeneration": generation, "conditions": [condition]}}


@dataclass
class FloorResult:
    seconds: float
    window: Window
    calibrated: bool


async def floor(api: Api, metrics: Metrics, namespace: str, items: list[tuple[Kind, dict[str, Any]]]) -> FloorResult:
    async def work(kind: Kind, body: dict[str, Any]) -> None:
        created = await api.create(kind, namespace, body)
        if kind is not SECRET:
            generation = int(created["metadata"].get("generation") or 1)
            await api.patch_status(kind, namespace, created["metadata"]["name"], ready_status(generation))

    before = await metrics.snapshot()
    started = time.monotonic()
    await pool(items, work)
    seconds = time.monotonic() - started
    after = await metrics.snapshot()
    result = window("floor", before, after)
    # The method's check: with no operator, the JSON side the server counted is exactly the benchmark's.
    calibrated = not result.requests
    return FloorResult(seconds, result, calibrated)


@dataclass
class ShapeResult:
    shape: Shape
    namespace: str
    floor: FloorResult | None = None
    created_seconds: float | None = None
    ready_seconds: float | None = None
    kind_ready_seconds: dict[str, float] = field(default_factory=dict)
    ready_counts: dict[str, int] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)
    idle_changes: dict[str, int] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)
    operator_side: dict[str, dict[str, float] | None] = field(default_factory=dict)
    startup: Window | None = None
    settled: bool | None = None
    settle_seconds: float = 0.0

    @property
    def ready(self) -> bool:
        return self.ready_seconds is not None


def conditions_of(listings: dict[str, dict[str, Any]]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """kind/name -> (resourceVersion, conditions sorted by type)."""
    out = {}
    for plural, listing in listings.items():
        for item in listing["items"]:
            conds = sorted((item.get("status") or {}).get("conditions") or [], key=lambda c: str(c.get("type")))
            out[f"{plural}/{item['metadata']['name']}"] = (item["metadata"]["resourceVersion"], conds)
    return out


async def list_all(api: Api, namespace: str) -> dict[str, dict[str, Any]]:
    return {k.plural: await api.list(k, namespace) for k in WATCHED}


def compare_conditions(
    before: dict[str, tuple[str, list[dict[str, Any]]]], after: dict[str, tuple[str, list[dict[str, Any]]]]
) -> dict[str, Any]:
    changed = [k for k in before if before[k][1] != after.get(k, ("", []))[1]]
    moved = [
        k
        for k in before
        if {c.get("type"): c.get("lastTransitionTime") for c in before[k][1]}
        != {c.get("type"): c.get("lastTransitionTime") for c in after.get(k, ("", []))[1]}
    ]
    written = [k for k in before if before[k][0] != after.get(k, ("", []))[0]]
    types: Counter[str] = Counter()
    for k in changed:
        old = {c.get("type"): c for c in before[k][1]}
        new = {c.get("type"): c for c in after.get(k, ("", []))[1]}
        for t in set(old) | set(new):
            if old.get(t) != new.get(t):
                types[str(t)] += 1
    return {
        "objects": len(before),
        "conditionsChanged": len(changed),
        "lastTransitionTimeMoved": len(moved),
        "objectsWritten": len(written),
        "changedConditionTypes": dict(types),
        "examples": changed[:5],
    }


def json_writes(snap: Snapshot) -> int:
    """Writes by the JSON clients (the operator and the benchmark) so far, as the server counted them."""
    return sum(v for (cls, _, verb, *_), v in snap.requests.items() if cls == "json" and verb not in READ_VERBS)


async def settle(metrics: Metrics, quiet: float, minimum: float, limit: float) -> bool:
    """Until the server has seen no write from the operator for `quiet` seconds, and at least `minimum` seconds
    have passed: True; False after `limit` seconds. The benchmark itself writes nothing meanwhile."""
    started = time.monotonic()
    last_count, last_write = json_writes(await metrics.snapshot()), started
    while time.monotonic() - started < limit:
        await asyncio.sleep(1)
        count = json_writes(await metrics.snapshot())
        if count != last_count:
            last_count, last_write = count, time.monotonic()
        elif time.monotonic() - last_write >= quiet and time.monotonic() - started >= minimum:
            return True
    return False


class ShapeRun:
    """One shape: its floor, then the operator over the same objects, watched until Ready, idle and restarted."""

    def __init__(self, api: Api, metrics: Metrics, shape: Shape, args: argparse.Namespace, ctx: Context) -> None:
        self.api, self.metrics, self.shape, self.args, self.ctx = api, metrics, shape, args, ctx
        self.namespace = f"{ctx.prefix}-{shape.key}"
        self.result = ShapeResult(shape, self.namespace, settle_seconds=args.settle_seconds)
        self.items = manifests(shape, ctx.nameserver)
        expected = {PROVIDER.plural: shape.providers, DOMAIN.plural: shape.domains, POLICY.plural: shape.policies}
        self.tracker = Tracker(expected)
        self.operator = Operator(self.namespace, ctx.kubeconfig, ctx.log_dir)
        self.watches: list[asyncio.Task[None]] = []

    async def run(self, *, memory_only: bool) -> ShapeResult:
        print(f"\n== shape {self.shape.key}: {self.shape.describe()}; namespace {self.namespace}")
        if not memory_only:
            floor_namespace = f"{self.ctx.prefix}-floor-{self.shape.key}"
            await self.ctx.create_namespace(floor_namespace)
            self.result.floor = await floor(self.api, self.metrics, floor_namespace, self.items)
            print(f"  floor: {self.result.floor.seconds:.1f} s")
        await self.ctx.create_namespace(self.namespace)
        try:
            await self.start_watching()
            await self.start_operator()
            deadline = self.args.deadline_10k if memory_only else self.args.deadline
            if await self.until_ready(deadline) and not memory_only:
                await self.idle()
                await self.restart()
        finally:
            self.operator.stop()
            for task in self.watches:
                task.cancel()
            await asyncio.gather(*self.watches, return_exceptions=True)
        return self.result

    async def start_watching(self) -> None:
        """One LIST+WATCH per kind, open (as the server sees it) before the operator starts."""
        earlier = await self.metrics.namespaced_watches(GROUP)
        listed = [asyncio.Event() for _ in WATCHED]
        for kind, event in zip(WATCHED, listed, strict=True):
            self.watches.append(asyncio.create_task(watch_kind(self.api, kind, self.namespace, self.tracker, event)))
        await asyncio.gather(*(e.wait() for e in listed))
        if not await wait_for_watches(self.metrics, earlier, 30, lambda: True):
            print("  (the benchmark's own watches were not seen on the server; going on)")

    async def start_operator(self) -> None:
        before = await self.metrics.snapshot()
        mine = await self.metrics.namespaced_watches(GROUP)
        self.operator.start()
        if await wait_for_watches(self.metrics, mine, 120, self.operator.alive):
            await asyncio.sleep(1)  # its initial LISTs came before its WATCHes; give its first handlers a moment
        elif not self.operator.alive():
            raise RuntimeError(f"the operator exited at start; see {self.ctx.log_dir}")
        else:
            print("  (the operator's watches were not seen within 120 s; going on)")
        self.result.memory["started, no objects"] = self.operator.memory()
        self.ready_from = await self.metrics.snapshot()
        self.result.startup = window("startup", before, self.ready_from)

    async def until_ready(self, deadline: float) -> bool:
        """Create everything at concurrency 16; wait until every object is Ready, or `deadline` seconds."""
        result, tracker = self.result, self.tracker
        side0 = operator_side_view(self.args.operator_metrics)
        started = time.monotonic()
        creating = asyncio.create_task(pool(self.items, lambda kind, body: self.api.create(kind, self.namespace, body)))
        last_report = started
        while not tracker.all_ready.is_set() and time.monotonic() - started < deadline:
            if not self.operator.alive():
                print(f"  the operator exited; see {self.ctx.log_dir}")
                break
            if creating.done() and result.created_seconds is None:
                creating.result()
                result.created_seconds = time.monotonic() - started
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                counts = ", ".join(
                    f"{tracker.count(k.plural)}/{tracker.expected[k.plural]} {k.plural}" for k in WATCHED
                )
                print(f"  {last_report - started:.0f} s: Ready {counts}; operator {self.operator.memory()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracker.all_ready.wait(), timeout=1)
        if result.created_seconds is None:
            await creating
            result.created_seconds = time.monotonic() - started
        self.ready_at = await self.metrics.snapshot()
        self.side_ready = operator_side_view(self.args.operator_metrics)
        result.operator_side["until Ready"] = operator_side_delta(side0, self.side_ready)
        result.ready_counts = {k.plural: tracker.count(k.plural) for k in WATCHED}
        if self.operator.alive():
            result.memory["all Ready" if tracker.all_ready_at else "at the deadline"] = self.operator.memory()
        if tracker.all_ready_at is None:
            result.windows["until Ready"] = window("until the deadline", self.ready_from, self.ready_at)
            print(f"  NOT all Ready within {deadline:.0f} s: {result.ready_counts}")
            return False
        result.ready_seconds = tracker.all_ready_at - started
        result.kind_ready_seconds = {p: t - started for p, t in tracker.kind_ready_at.items()}
        result.windows["until Ready"] = window("until Ready", self.ready_from, self.ready_at)
        print(f"  all Ready after {result.ready_seconds:.1f} s (created in {result.created_seconds:.1f} s)")
        return True

    async def idle(self) -> None:
        """Settle (no write for --settle-seconds), then --idle-seconds with nothing changing."""
        self.result.settled = await settle(self.metrics, self.args.settle_seconds, 0, SETTLE_LIMIT)
        settled = await self.metrics.snapshot()
        self.result.windows["settling"] = window("settling", self.ready_at, settled)
        how = "settled" if self.result.settled else "still writing"
        print(f"  {how} {settled.at - self.ready_at.at:.1f} s after Ready; idle for {self.args.idle_seconds:.0f} s")
        self.tracker.mark()
        await asyncio.sleep(self.args.idle_seconds)
        idle = await self.metrics.snapshot()
        self.result.windows["idle"] = window("idle", settled, idle)
        self.result.idle_changes = {"objectsModified": len(self.tracker.changed_objects), **self.tracker.modified}
        self.result.memory["after idle"] = self.operator.memory()
        self.result.operator_side["idle"] = operator_side_delta(
            self.side_ready, operator_side_view(self.args.operator_metrics)
        )

    async def restart(self) -> None:
        """SIGTERM, start again over the unchanged objects, --restart-seconds: writes, and changed conditions."""
        before = conditions_of(await list_all(self.api, self.namespace))
        stopping = await self.metrics.snapshot()
        await asyncio.to_thread(self.operator.stop)
        self.operator.start()
        await asyncio.sleep(self.args.restart_seconds)
        restarted = await self.metrics.snapshot()
        self.result.windows["restart"] = window("restart", stopping, restarted)
        self.result.memory["restarted"] = self.operator.memory()
        self.result.restart = compare_conditions(before, conditions_of(await list_all(self.api, self.namespace)))
        self.result.restart["notReadyAtWindowEnd"] = self.tracker.total - len(self.tracker.ready)
        if self.tracker.total > len(self.tracker.ready):  # how long until Ready again (outside the window)
            again: float | None = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.tracker.all_ready_now.wait(), timeout=300)
                again = round(time.monotonic() - stopping.at, 1)
            self.result.restart["allReadyAgainSeconds"] = again
        # The window can end before the restarted operator has been through every object: watch on until it
        # writes nothing for --settle-seconds (at least another --restart-seconds), and compare again.
        quiet = await settle(self.metrics, self.args.settle_seconds, self.args.restart_seconds, SETTLE_LIMIT)
        later = await self.metrics.snapshot()
        self.result.windows["after restart"] = window("after the restart window", restarted, later)
        self.result.restart["afterWindow"] = {
            **compare_conditions(before, conditions_of(await list_all(self.api, self.namespace))),
            "seconds": round(later.at - restarted.at, 1),
            "quiet": quiet,
        }
        print(
            f"  restart: {self.result.windows['restart'].writes} writes; conditions changed on "
            f"{self.result.restart['conditionsChanged']} of {self.result.restart['objects']} objects"
        )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[str]], indent: str = "  ", *, right: bool = True) -> str:
    """Columns padded to their widths; with `right`, numbers after the first column are right-aligned."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    lines = []
    for row in rows:
        cells = [c.rjust(widths[i]) if right and i and _numeric(c) else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[0-9][0-9,.]*( [A-Za-z]+)?|-", text))


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def resource_label(key: Key) -> str:
    _, group, resource, sub = key
    name = resource if not group or group == GROUP else f"{resource}.{group}"
    return f"{name}/{sub}" if sub else name


def breakdown(result: ShapeResult) -> str:
    names = [n for n in ("until Ready", "settling", "idle", "restart", "after restart") if n in result.windows]
    keys: set[Key] = set()
    for n in names:
        keys |= set(result.windows[n].requests)
    objects = result.shape.objects
    first = "until Ready" if result.ready else "until the deadline"
    header = ["verb", "resource", first, "per object", *names[1:]]
    rows = [header]
    order = {v: i for i, v in enumerate((*WRITE_VERBS, *READ_VERBS))}
    for key in sorted(keys, key=lambda k: (order.get(k[0], 99), resource_label(k))):
        counts = [int(result.windows[n].requests.get(key, 0)) for n in names]
        rows.append(
            [
                key[0],
                resource_label(key),
                f"{counts[0]:,}",
                f"{counts[0] / objects:.2f}",
                *(f"{c:,}" for c in counts[1:]),
            ]
        )
    for label, attr in (("writes", "writes"), ("reads", "reads")):
        counts = [int(getattr(result.windows[n], attr)) for n in names]
        rows.append(["", f"= {label}", f"{counts[0]:,}", f"{counts[0] / objects:.2f}", *(f"{c:,}" for c in counts[1:])])
    rows.append(
        [
            "",
            "bytes read (GET/LIST bodies)",
            mib(result.windows[names[0]].read_bytes),
            "",
            *(mib(result.windows[n].read_bytes) for n in names[1:]),
        ]
    )
    rows.append(
        [
            "",
            "bytes of watch events",
            mib(result.windows[names[0]].watch_bytes),
            "",
            *(mib(result.windows[n].watch_bytes) for n in names[1:]),
        ]
    )
    rows.append(
        [
            "",
            "window, s",
            f"{result.windows[names[0]].seconds:.0f}",
            "",
            *(f"{result.windows[n].seconds:.0f}" for n in names[1:]),
        ]
    )
    return table(rows, indent="    ")


def report_shape(result: ShapeResult) -> str:
    shape = result.shape
    lines = [f"shape {shape.key}: {shape.describe()} = {shape.objects:,} objects", table(figures(result), right=False)]
    lines += details(result)
    return "\n".join(lines)


def figures(result: ShapeResult) -> list[list[str]]:
    shape = result.shape
    rows = [["figure", "value", "goal"]]
    if result.floor is not None:
        f = result.floor
        own = int(sum(f.window.own.values()))
        rows.append(["floor: bare client, create + 1 status patch", f"{f.seconds:.1f} s ({own:,} requests)", ""])
        check = (
            f"the server counted {int(sum(f.window.server_json.values())):,} requests from JSON clients = the "
            f"benchmark's {own:,}"
            if f.calibrated
            else f"MISMATCH: the server counted more than the benchmark made: {dict(f.window.requests)}"
        )
        rows.append(["  counting check (floor, no operator)", check, ""])
    until = result.windows.get("until Ready")
    upto = "until Ready" if result.ready else "until the deadline"
    if result.ready_seconds is not None:
        ratio = f" = {result.ready_seconds / result.floor.seconds:.1f}x floor" if result.floor else ""
        rows.append(
            [
                "Postmaster: first create to all Ready",
                f"{result.ready_seconds:.1f} s{ratio}",
                f"<= {GOAL_READY_RATIO:.0f}x floor",
            ]
        )
        per_kind = ", ".join(f"{p} {s:.1f} s" for p, s in sorted(result.kind_ready_seconds.items(), key=lambda x: x[1]))
        rows.append(["  each kind all Ready at", per_kind, ""])
        rows.append(["  all created (through the API) at", f"{result.created_seconds or 0:.1f} s", ""])
    else:
        counts = ", ".join(f"{v} {k}" for k, v in result.ready_counts.items())
        rows.append(["Postmaster: NOT all Ready by the deadline", counts, ""])
    if until is not None:
        rows.append(
            [
                f"writes per object {upto} (Events incl.)",
                f"{until.writes / shape.objects:.2f} ({until.writes:,})",
                f"<= {GOAL_WRITES_PER_OBJECT:.0f}",
            ]
        )
        rows.append([f"reads per object {upto}", f"{until.reads / shape.objects:.2f} ({until.reads:,})", ""])
    settling = result.windows.get("settling")
    if settling is not None:
        rows.append(
            [
                f"after Ready, until no write for {result.settle_seconds:.0f} s",
                f"{settling.writes:,} writes, {settling.reads:,} reads in {settling.seconds:.0f} s"
                + ("" if result.settled else f" (still changing after {SETTLE_LIMIT:.0f} s: idle began anyway)"),
                "",
            ]
        )
    idle = result.windows.get("idle")
    if idle is not None:
        rows.append([f"idle {idle.seconds:.0f} s: writes", f"{idle.writes:,}", "0"])
        rows.append([f"idle {idle.seconds:.0f} s: reads", f"{idle.reads:,}", ""])
        rows.append(
            ["idle: objects modified (benchmark's watch)", f"{result.idle_changes.get('objectsModified', 0):,}", "0"]
        )
    restart = result.windows.get("restart")
    if restart is not None:
        r = result.restart
        rows.append([f"restart, {restart.seconds:.0f} s: writes", f"{restart.writes:,} (reads {restart.reads:,})", "0"])
        rows.append(
            [
                "restart: objects whose conditions changed",
                f"{r['conditionsChanged']} of {r['objects']} (lastTransitionTime moved: "
                f"{r['lastTransitionTimeMoved']}; objects written: {r['objectsWritten']})",
                "0",
            ]
        )
        if r.get("notReadyAtWindowEnd"):
            again = r.get("allReadyAgainSeconds")
            rows.append(
                [
                    "restart: objects not Ready at the window's end",
                    f"{r['notReadyAtWindowEnd']} (all Ready again "
                    + (f"{again:.0f} s after SIGTERM)" if again is not None else "not within 300 s)"),
                    "0",
                ]
            )
        later, after = r.get("afterWindow"), result.windows.get("after restart")
        if later is not None and after is not None:
            stop_reason = "no write for a while" if later["quiet"] else "the limit; still writing"
            rows.append(
                [
                    f"after the restart window, {after.seconds:.0f} s (until {stop_reason})",
                    f"{after.writes:,} writes (reads {after.reads:,}); conditions changed since before the "
                    f"restart on {later['conditionsChanged']} of {later['objects']} (lastTransitionTime moved: "
                    f"{later['lastTransitionTimeMoved']})",
                    "0",
                ]
            )
    for label, mem in result.memory.items():
        rows.append([f"operator memory, {label}", str(mem), ""])
    if result.startup is not None:
        rows.append(
            [
                "operator start-up (before any object)",
                f"{result.startup.writes} writes, {result.startup.reads} reads",
                "",
            ]
        )
    return rows


def details(result: ShapeResult) -> list[str]:
    lines = []
    if result.windows:
        lines.append(
            "  API requests of the operator by verb and resource (server side, the benchmark's own taken out):"
        )
        lines.append(breakdown(result))
        errors = Counter[str]()
        for w in result.windows.values():
            for (code, verb, resource, sub), v in w.errors.items():
                if verb == "WATCH":
                    continue  # a watch that ends (timeout, or its client closing it) is filed without a status
                errors[f"{code} {verb} {resource}{'/' + sub if sub else ''}"] += int(v)
        if errors:
            lines.append("  non-2xx among them: " + ", ".join(f"{k}: {v}" for k, v in errors.most_common()))
        kube = {n: w.kube for n, w in result.windows.items()}
        lines.append(
            "  not counted above: kube-controller-manager and API-server loopback requests "
            + ", ".join(f"{n} {v}" for n, v in kube.items())
        )
    side = {k: v for k, v in result.operator_side.items() if v is not None}
    if side:
        lines.append("  operator-side view (--operator-metrics), counter changes:")
        for name, values in side.items():
            lines.append(f"    {name}: " + ", ".join(f"{k} {v:g}" for k, v in values.items()))
    else:
        lines.append("  operator-side view: not exposed by the operator (hook: --operator-metrics URL)")
    return lines


def result_json(result: ShapeResult) -> dict[str, Any]:
    objects = result.shape.objects
    out: dict[str, Any] = {
        "shape": result.shape.key,
        "providers": result.shape.providers,
        "domains": result.shape.domains,
        "policies": result.shape.policies,
        "objects": objects,
        "namespace": result.namespace,
        "readySeconds": result.ready_seconds,
        "createdSeconds": result.created_seconds,
        "kindReadySeconds": result.kind_ready_seconds,
        "readyCounts": result.ready_counts,
        "windows": {n: w.as_dict(objects) for n, w in result.windows.items()},
        "memoryMiB": {
            n: {"rss": round(m.rss_mib, 1), "peak": round(m.hwm_mib, 1), "cpuSeconds": round(m.cpu_seconds, 1)}
            for n, m in result.memory.items()
        },
        "settledBeforeIdle": result.settled,
        "idleChanges": result.idle_changes,
        "restart": result.restart,
        "operatorSide": result.operator_side,
        "goals": {
            "readyRatioToFloor": GOAL_READY_RATIO,
            "writesPerObject": GOAL_WRITES_PER_OBJECT,
            "idleWrites": 0,
            "restartWrites": 0,
            "rss10kMiB": GOAL_RSS_10K_MIB,
        },
    }
    if result.startup is not None:
        out["startup"] = result.startup.as_dict(objects)
    if result.floor is not None:
        out["floor"] = {
            "seconds": round(result.floor.seconds, 2),
            "calibrated": result.floor.calibrated,
            "window": result.floor.window.as_dict(objects),
        }
        if result.ready_seconds is not None:
            out["readyRatioToFloor"] = round(result.ready_seconds / result.floor.seconds, 2)
    return out


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


@dataclass
class Context:
    prefix: str
    kubeconfig: Path
    nameserver: str
    log_dir: Path
    namespaces: list[str] = field(default_factory=list)
    api_client: Any = None

    async def create_namespace(self, name: str) -> None:
        core = kubernetes.client.CoreV1Api(self.api_client)
        body = kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
        await asyncio.to_thread(core.create_namespace, body)
        self.namespaces.append(name)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", choices=("a", "b", "both"), default="both")
    parser.add_argument("--domains", type=int, default=1000, help="SendingDomains per shape (default 1000)")
    parser.add_argument("--domains-10k", type=int, default=10_000, help="SendingDomains of the memory phase")
    parser.add_argument("--skip-10k", action="store_true", help="leave out the 10,000-SendingDomain memory phase")
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--restart-seconds", type=float, default=30.0)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        help="the idle window starts once the server has seen no write for this long (also ends the after-restart one)",
    )
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for shapes a and b to become Ready")
    parser.add_argument("--deadline-10k", type=float, default=900.0, help="seconds the memory phase waits for Ready")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench_scale.json")
    parser.add_argument(
        "--operator-metrics",
        metavar="URL",
        help="optional hook: the operator's own Prometheus endpoint, if it ever exposes one",
    )
    parser.add_argument(
        "--shared-cluster",
        action="store_true",
        help="use the usual local control plane (others' requests are then counted too)",
    )
    return parser.parse_args(argv)


def shapes(args: argparse.Namespace) -> list[Shape]:
    out = []
    if args.shape in ("a", "both"):
        out.append(Shape("a", 50, args.domains, 5))
    if args.shape in ("b", "both"):
        out.append(Shape("b", 1, args.domains, 1))
    return out


async def measure(args: argparse.Namespace, ctx: Context) -> list[ShapeResult]:
    results: list[ShapeResult] = []
    async with Api(ctx.kubeconfig) as api:
        metrics = Metrics(api)
        for shape in shapes(args):
            results.append(await ShapeRun(api, metrics, shape, args, ctx).run(memory_only=False))
        if not args.skip_10k:
            big = Shape("10k", 50, args.domains_10k, 5)
            results.append(await ShapeRun(api, metrics, big, args, ctx).run(memory_only=True))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.monotonic()
    build = args.json.parent
    build.mkdir(parents=True, exist_ok=True)
    log_dir = build / "bench_scale-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    private = not args.shared_cluster
    if private:
        # A control plane of the benchmark's own: the API server's counters then count only this run.
        os.environ["POSTMASTER_DEV_DIR"] = str(build / "bench_scale-cluster")
        devcluster.down(wipe=True)  # leftovers of an interrupted earlier run of this benchmark
    cluster = devcluster.up()
    api_client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    install_crds(api_client, ROOT / "crds")
    count = max([s.domains for s in shapes(args)] + ([] if args.skip_10k else [args.domains_10k]))
    results: list[ShapeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-nsd-") as tmp:
        started = time.monotonic()
        nsd = NsdServer(Path(tmp)).preload(zones(count)).start()
        ctx = Context(f"scale-{uuid.uuid4().hex[:5]}", cluster.kubeconfig, nsd.nameserver, log_dir)
        ctx.api_client = api_client
        try:
            print(
                f"control plane: {cluster.server} ({'private' if private else 'shared'}); nsd on {nsd.nameserver} "
                f"serving {count + 3:,} zones (started in {time.monotonic() - started:.1f} s)"
            )
            preflight(nsd.nameserver, [domain_name(0), domain_name(count - 1)])
            results = asyncio.run(measure(args, ctx))
        finally:
            nsd.stop()
            if private:
                devcluster.down(wipe=True)
            else:
                core = kubernetes.client.CoreV1Api(api_client)
                for name in ctx.namespaces:
                    with contextlib.suppress(kubernetes.client.ApiException):
                        core.delete_namespace(name)
    elapsed = time.monotonic() - wall

    print()
    for result in results:
        print(report_shape(result))
        print()
    print(summary(results))
    load = os.getloadavg()
    print(
        f"\nwhole run: {elapsed / 60:.1f} min on {os.cpu_count()} CPUs (load average now {load[0]:.1f} / "
        f"{load[1]:.1f} / {load[2]:.1f}: times depend on what else runs); operator logs in {log_dir}"
    )
    payload = {
        "benchmark": "bench_scale",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wallSeconds": round(elapsed, 1),
        "concurrency": CONCURRENCY,
        "privateControlPlane": private,
        "cpus": os.cpu_count(),
        "loadAverageAtEnd": [round(x, 2) for x in load],
        "shapes": [result_json(r) for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"figures written to {args.json}")
    failed = [r.shape.key for r in results if r.shape.key != "10k" and not r.ready]
    if failed:
        print(f"FAILED: shape {', '.join(failed)} not all Ready within {args.deadline:.0f} s")
        return 1
    return 0


def summary(results: Sequence[ShapeResult]) -> str:
    rows = [["summary", *(f"shape {r.shape.key}" for r in results), "goal"]]

    def row(label: str, goal: str, cell: Callable[[ShapeResult], str]) -> None:
        rows.append([label, *(cell(r) for r in results), goal])

    def ratio(r: ShapeResult) -> str:
        if r.ready_seconds is None:
            done = sum(r.ready_counts.values())
            return f"not Ready ({done:,}/{r.shape.objects:,} at the deadline)"
        if r.floor is None:
            return f"{r.ready_seconds:.0f} s"
        return f"{r.ready_seconds:.0f} s / {r.floor.seconds:.1f} s = {r.ready_seconds / r.floor.seconds:.0f}x"

    def per_object(r: ShapeResult) -> str:
        w = r.windows.get("until Ready")
        return f"{w.writes / r.shape.objects:.1f}" if w else "-"

    def in_window(name: str, attr: str) -> Callable[[ShapeResult], str]:
        return lambda r: f"{getattr(r.windows[name], attr):,}" if name in r.windows else "-"

    row("objects", "", lambda r: f"{r.shape.objects:,}")
    row("Ready: time / floor", f"<= {GOAL_READY_RATIO:.0f}x", ratio)
    row("writes per object until Ready (or the deadline)", f"<= {GOAL_WRITES_PER_OBJECT:.0f}", per_object)
    row("writes idle", "0", in_window("idle", "writes"))
    row("reads idle", "", in_window("idle", "reads"))
    row("writes in the restart window", "0", in_window("restart", "writes"))

    def changed(r: ShapeResult) -> str:
        return f"{r.restart['conditionsChanged']:,}" if "conditionsChanged" in r.restart else "-"

    row("objects with conditions changed, window's end", "0", changed)
    row("writes after the restart window, until quiet", "0", in_window("after restart", "writes"))

    def later(r: ShapeResult) -> str:
        after = r.restart.get("afterWindow")
        return f"{after['conditionsChanged']:,}" if after else "-"

    row("objects with conditions changed, until quiet", "0", later)

    def rss(r: ShapeResult) -> str:
        mem = r.memory.get("all Ready") or r.memory.get("at the deadline")
        return f"{mem.rss_mib:.0f} MiB (peak {mem.hwm_mib:.0f})" if mem else "-"

    row("operator RSS when Ready (or at the deadline)", f"<= {GOAL_RSS_10K_MIB:.0f} MiB at 10k", rss)

    def after_idle(r: ShapeResult) -> str:
        mem = r.memory.get("after idle")
        return f"{mem.rss_mib:.0f} MiB (peak {mem.hwm_mib:.0f})" if mem else "-"

    row("operator RSS after idle", "", after_idle)
    return table(rows, indent="")


if __name__ == "__main__":
    sys.exit(main())
