"""Start, reuse, inspect and stop the local control plane: etcd, kube-apiserver, kube-controller-manager.

Everything listens on 127.0.0.1 only, on free ports chosen at first start and kept while they stay free.
Processes run detached (their own session), log into ``<state>/logs`` and are tracked by pid files in
``<state>/run``. The API server authenticates bearer tokens from ``<state>/tokens.csv`` and authorizes with
RBAC; the kubeconfig at ``<state>/kubeconfig`` verifies TLS against the generated CA.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import http.client
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import paths
from .build import (
    BUILD_PREREQUISITES,
    RUN_PREREQUISITES,
    binaries_present,
    ensure_binaries,
    ensure_packages,
    file_lock,
    tail,
)
from .errors import DevClusterError
from .pki import Pki, ensure_pki

CONTEXT = "postmaster-dev"
ADMIN_USER = "postmaster-dev-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of the range: the `kubernetes` Service (nothing routes to it)
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Layout:
    """Files and folders under the state directory."""

    root: Path

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.csv"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.root / "controller-manager.kubeconfig"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def log(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def entries(self) -> tuple[Path, ...]:
        """Everything this module writes under the root (what ``down(wipe=True)`` removes)."""
        return (
            self.pki_dir,
            self.etcd_dir,
            self.log_dir,
            self.run_dir,
            self.tokens,
            self.kubeconfig,
            self.controller_manager_kubeconfig,
            self.ports,
            self.lock,
        )


@dataclass(frozen=True)
class DevCluster:
    """A running local control plane."""

    kubeconfig: Path
    server: str
    ca_file: Path
    state_dir: Path
    log_dir: Path
    context: str = CONTEXT
    started: bool = False  # True when this `up()` call started the processes, False when it reused them
    pids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    state_dir: Path
    server: str | None
    kubeconfig: Path | None
    pids: dict[str, int | None]
    healthy: bool

    @property
    def running(self) -> bool:
        return all(pid is not None for pid in self.pids.values())

    def describe(self) -> str:
        if self.running and self.healthy:
            head = f"running and healthy at {self.server}"
        elif any(pid is not None for pid in self.pids.values()):
            head = "partly running / unhealthy (run `postmaster dev up` to restart it)"
        else:
            head = "not running"
        lines = [f"local control plane: {head}", f"state: {self.state_dir}"]
        if self.kubeconfig is not None:
            lines.append(f"kubeconfig: {self.kubeconfig}")
        for name, pid in self.pids.items():
            lines.append(f"  {name}: {'pid ' + str(pid) if pid is not None else 'stopped'}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- processes


def _proc_alive(pid: int, component: str) -> bool:
    """True if ``pid`` is a live (non-zombie) process running the component's binary."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    if state in ("Z", "X"):
        return False
    argv0 = cmdline.split(b"\0", 1)[0].decode("utf-8", "replace")
    return Path(argv0).name == component


def _read_pid(layout: Layout, component: str) -> int | None:
    try:
        pid = int(layout.pidfile(component).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _proc_alive(pid, component) else None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop_component(layout: Layout, component: str, grace: float = 10.0) -> None:
    pid = _read_pid(layout, component)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _proc_alive(pid, component) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _proc_alive(pid, component):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _proc_alive(pid, component):
                _reap(pid)
                time.sleep(0.05)
    layout.pidfile(component).unlink(missing_ok=True)


def _stop_all(layout: Layout) -> None:
    for component in reversed(COMPONENTS):
        _stop_component(layout, component)


# The shell starts the component in the background (its own session, via start_new_session on the shell),
# prints its pid and exits, so the component is not a child left for this Python process to reap.
_LAUNCHER = '"$@" </dev/null >>"$0" 2>&1 & echo $!'


def _spawn(layout: Layout, component: str, argv: list[str]) -> int:
    log = layout.log(component)
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    with log.open("w") as handle:
        handle.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {shlex.join(argv)}\n")
    result = subprocess.run(
        ["sh", "-c", _LAUNCHER, str(log), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        cwd=layout.root,
    )
    try:
        pid = int(result.stdout.strip())
    except ValueError as exc:
        raise DevClusterError(f"could not start {component}: {result.stderr.strip()}") from exc
    layout.pidfile(component).write_text(f"{pid}\n")
    return pid


# --------------------------------------------------------------------------- ports, tokens, kubeconfig


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go listeners do
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _choose_ports(layout: Layout, names: tuple[str, ...], fresh: bool = False) -> dict[str, int]:
    """Reuse the ports saved last time while they are free; otherwise let the kernel pick free ones."""
    saved: dict[str, int] = {}
    if not fresh:
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
            saved = {k: int(v) for k, v in json.loads(layout.ports.read_text()).items()}
    chosen: dict[str, int] = {}
    holders: list[socket.socket] = []
    try:
        for name in names:
            port = saved.get(name)
            if port is not None and port not in chosen.values() and _port_free(port):
                chosen[name] = port
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holders.append(sock)  # held open until all are chosen, so the kernel hands out distinct ports
            sock.bind((LOOPBACK, 0))
            chosen[name] = sock.getsockname()[1]
    finally:
        for sock in holders:
            sock.close()
    layout.ports.write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _ensure_tokens(layout: Layout) -> dict[str, str]:
    """user name -> bearer token, from tokens.csv (created once, mode 0600)."""
    users = {ADMIN_USER: "system:masters", CONTROLLER_MANAGER_USER: "system:masters"}
    tokens: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for row in csv.reader(layout.tokens.read_text().splitlines()):
            if len(row) >= 3:
                tokens[row[1]] = row[0]
    if set(tokens) >= set(users):
        return tokens
    tokens = {user: secrets.token_urlsafe(32) for user in users}
    lines = [f'{tokens[user]},{user},{user},"{groups}"' for user, groups in users.items()]
    _write_private(layout.tokens, "\n".join(lines) + "\n")
    return tokens


def _kubeconfig_text(server: str, ca_file: Path, user: str, token: str) -> str:
    ca_data = base64.b64encode(ca_file.read_bytes()).decode("ascii")
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _admin_token(layout: Layout) -> str | None:
    try:
        config = yaml.safe_load(layout.kubeconfig.read_text())
        token = config["users"][0]["user"]["token"]
    except (FileNotFoundError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return None
    return token if isinstance(token, str) else None


# --------------------------------------------------------------------------- health


def _https_get(port: int, path: str, ca_file: Path, token: str, timeout: float = 3.0) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2.0)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read()
    except OSError:
        return False
    finally:
        conn.close()
    with contextlib.suppress(ValueError):
        return response.status == 200 and json.loads(body).get("health") == "true"
    return False


def _apiserver_ready(port: int, ca_file: Path, token: str) -> bool:
    try:
        status, _ = _https_get(port, "/readyz", ca_file, token)
        if status != 200:
            return False
        status, _ = _https_get(port, "/api/v1/namespaces/default", ca_file, token)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


class _PortInUseError(DevClusterError):
    pass


def _wait_for(
    layout: Layout,
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    watched: tuple[tuple[str, int], ...],
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        for component, pid in watched:
            if not _proc_alive(pid, component):
                _reap(pid)
                log_tail = tail(layout.log(component))
                error = _PortInUseError if "address already in use" in log_tail else DevClusterError
                raise error(f"{component} exited while waiting for {what}; {layout.log(component)}:\n{log_tail}")
        if time.monotonic() > deadline:
            log = layout.log(watched[-1][0])
            raise DevClusterError(f"timed out after {timeout:.0f}s waiting for {what}; {log}:\n{tail(log)}")
        time.sleep(0.1)


def _controller_manager_started(layout: Layout) -> bool:
    try:
        text = layout.log("kube-controller-manager").read_text(errors="replace")
    except FileNotFoundError:
        return False
    return 'Started "garbagecollector"' in text and 'Started "namespace"' in text


# --------------------------------------------------------------------------- public API


def _current(layout: Layout) -> DevCluster | None:
    """The running cluster described by the state directory, if all processes live and it answers."""
    pids = {c: _read_pid(layout, c) for c in COMPONENTS}
    token = _admin_token(layout)
    try:
        port = int(json.loads(layout.ports.read_text())["apiserver"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    ca_file = Pki(layout.pki_dir).ca_cert
    if any(pid is None for pid in pids.values()) or token is None or not ca_file.exists():
        return None
    if not _apiserver_ready(port, ca_file, token):
        return None
    return DevCluster(
        kubeconfig=layout.kubeconfig,
        server=f"https://{LOOPBACK}:{port}",
        ca_file=ca_file,
        state_dir=layout.root,
        log_dir=layout.log_dir,
        started=False,
        pids={c: p for c, p in pids.items() if p is not None},
    )


def up(timeout: float = 120.0, install_deps: bool | None = None, output: TextIO | None = None) -> DevCluster:
    """Start the local control plane, or return the running one if it is healthy.

    Builds the binaries first if they are missing (minutes, once). ``install_deps`` (or env
    POSTMASTER_DEV_APT_INSTALL=1) lets it run apt-get for missing Debian packages when root.
    """
    layout = Layout(paths.state_dir())
    layout.root.mkdir(parents=True, exist_ok=True)
    with file_lock(layout.lock):
        current = _current(layout)
        if current is not None:
            return current
        _stop_all(layout)  # leftovers of a half-running or unhealthy cluster
        # One apt-get line for everything missing, before a build that takes minutes.
        needed = RUN_PREREQUISITES if binaries_present() else RUN_PREREQUISITES + BUILD_PREREQUISITES
        ensure_packages(needed, "to build and run the local control plane", install_deps)
        bins = ensure_binaries(install_deps=install_deps, output=output)
        for directory in (layout.log_dir, layout.run_dir, layout.etcd_dir):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.etcd_dir, 0o700)
        pki = ensure_pki(layout.pki_dir, SERVICE_IP)
        tokens = _ensure_tokens(layout)
        for attempt in range(3):
            ports = _choose_ports(layout, ("etcd_client", "etcd_peer", "apiserver"), fresh=attempt > 0)
            try:
                return _start(layout, bins=bins, pki=pki, tokens=tokens, ports=ports, timeout=timeout)
            except _PortInUseError:
                _stop_all(layout)
                if attempt == 2:
                    raise
            except BaseException:
                _stop_all(layout)
                raise
        raise AssertionError("unreachable")


def _start(
    layout: Layout, *, bins: Path, pki: Pki, tokens: dict[str, str], ports: dict[str, int], timeout: float
) -> DevCluster:
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    client_url = f"http://{LOOPBACK}:{ports['etcd_client']}"
    peer_url = f"http://{LOOPBACK}:{ports['etcd_peer']}"
    server = f"https://{LOOPBACK}:{ports['apiserver']}"
    _write_private(layout.kubeconfig, _kubeconfig_text(server, pki.ca_cert, ADMIN_USER, tokens[ADMIN_USER]))
    _write_private(
        layout.controller_manager_kubeconfig,
        _kubeconfig_text(server, pki.ca_cert, CONTROLLER_MANAGER_USER, tokens[CONTROLLER_MANAGER_USER]),
    )
    started = time.monotonic()

    etcd_pid = _spawn(
        layout,
        "etcd",
        [
            etcd,
            "--name=postmaster-dev",
            f"--data-dir={layout.etcd_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=postmaster-dev={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ],
    )
    watched: tuple[tuple[str, int], ...] = (("etcd", etcd_pid),)
    _wait_for(layout, "etcd to be healthy", lambda: _etcd_healthy(ports["etcd_client"]), timeout, watched)

    apiserver_pid = _spawn(
        layout,
        "kube-apiserver",
        [
            str(bins / "kube-apiserver"),
            f"--etcd-servers={client_url}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={ports['apiserver']}",
            "--insecure-port=0",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--token-auth-file={layout.tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No kubelet: the `kubernetes` Endpoints (which may not hold a loopback IP) stay unmanaged.
            # No service-account controller: Pods must not need a service-account token to be stored.
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
        ],
    )
    watched += (("kube-apiserver", apiserver_pid),)
    remaining = max(5.0, timeout - (time.monotonic() - started))
    _wait_for(
        layout,
        "kube-apiserver /readyz and the default namespace",
        lambda: _apiserver_ready(ports["apiserver"], pki.ca_cert, tokens[ADMIN_USER]),
        remaining,
        watched,
    )

    cm_pid = _spawn(
        layout,
        "kube-controller-manager",
        [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={layout.controller_manager_kubeconfig}",
            "--controllers=garbagecollector,namespace",
            "--port=0",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
        ],
    )
    watched += (("kube-controller-manager", cm_pid),)
    remaining = max(5.0, timeout - (time.monotonic() - started))
    _wait_for(
        layout,
        "kube-controller-manager to start its controllers",
        lambda: _controller_manager_started(layout),
        remaining,
        watched,
    )
    return DevCluster(
        kubeconfig=layout.kubeconfig,
        server=server,
        ca_file=pki.ca_cert,
        state_dir=layout.root,
        log_dir=layout.log_dir,
        started=True,
        pids={"etcd": etcd_pid, "kube-apiserver": apiserver_pid, "kube-controller-manager": cm_pid},
    )


def down(wipe: bool = False) -> None:
    """Stop the processes (by their pid files). With ``wipe``, also delete the state (etcd data, certs...)."""
    layout = Layout(paths.state_dir())
    if not layout.root.exists():
        return
    with file_lock(layout.lock):
        _stop_all(layout)
        if wipe:
            for entry in layout.entries():
                if entry == layout.lock:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
            for stale in layout.root.glob("*.tmp"):
                stale.unlink()
    if wipe:
        layout.lock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            layout.root.rmdir()  # only if nothing else was put there


def status() -> Status:
    layout = Layout(paths.state_dir())
    pids = {c: _read_pid(layout, c) for c in COMPONENTS}
    server: str | None = None
    healthy = False
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        port = int(json.loads(layout.ports.read_text())["apiserver"])
        server = f"https://{LOOPBACK}:{port}"
        token = _admin_token(layout)
        ca_file = Pki(layout.pki_dir).ca_cert
        healthy = (
            pids["kube-apiserver"] is not None
            and token is not None
            and ca_file.exists()
            and _apiserver_ready(port, ca_file, token)
        )
    return Status(
        state_dir=layout.root,
        server=server,
        kubeconfig=layout.kubeconfig if layout.kubeconfig.exists() else None,
        pids=pids,
        healthy=healthy,
    )


def env() -> str:
    """Shell lines that point kubectl and kubernetes clients at the local control plane."""
    layout = Layout(paths.state_dir())
    if not layout.kubeconfig.exists():
        raise DevClusterError(f"no local control plane in {layout.root}: run `postmaster dev up` first")
    lines = [f"export KUBECONFIG={shlex.quote(str(layout.kubeconfig))}"]
    tools = paths.tools_dir()
    if shutil.which("kubectl") is None and os.access(tools / "kubectl", os.X_OK):
        lines.append(f'export PATH={shlex.quote(str(tools))}:"$PATH"')
    return "\n".join(lines) + "\n"
