"""`postmaster dev up/down/status/env` on a second, isolated control plane (POSTMASTER_DEV_DIR)."""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

import postmaster_dev

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "dev"
    monkeypatch.setenv("POSTMASTER_DEV_DIR", str(state))
    try:
        yield state
    finally:
        postmaster_dev.down(wipe=True)


def _client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_up_reuse_down_restart_wipe(isolated_state: Path) -> None:
    first = postmaster_dev.up()
    assert first.started
    assert first.kubeconfig == isolated_state / "kubeconfig"
    assert first.server.startswith("https://127.0.0.1:")
    assert set(first.pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}

    # The kubeconfig verifies TLS against the generated CA and carries a token; secrets are private.
    config = yaml.safe_load(first.kubeconfig.read_text())
    assert config["current-context"] == "postmaster-dev"
    cluster = config["clusters"][0]["cluster"]
    assert "certificate-authority-data" in cluster
    assert "insecure-skip-tls-verify" not in cluster
    for private in (first.kubeconfig, isolated_state / "tokens.csv", isolated_state / "pki" / "ca.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private

    # Secrets never reach the logs.
    tokens = [line.split(",", 1)[0] for line in (isolated_state / "tokens.csv").read_text().splitlines()]
    assert tokens
    for log in first.log_dir.iterdir():
        text = log.read_text(errors="replace")
        assert not any(token in text for token in tokens), log

    with _client(first.kubeconfig) as client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map(
            "default",
            kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="survivor"), data={"a": "1"}),
        )

    # up() again reuses the running one.
    started = time.monotonic()
    again = postmaster_dev.up()
    assert time.monotonic() - started < 2
    assert not again.started
    assert (again.server, again.pids) == (first.server, first.pids)

    state = postmaster_dev.status()
    assert state.running
    assert state.healthy
    assert postmaster_dev.env().startswith(f"export KUBECONFIG={first.kubeconfig}\n")

    postmaster_dev.down()
    assert not any(_alive(pid) for pid in first.pids.values())
    stopped = postmaster_dev.status()
    assert not stopped.running
    assert not stopped.healthy

    # Restarting keeps the data (etcd) and the credentials.
    restarted = postmaster_dev.up()
    assert restarted.started
    with _client(restarted.kubeconfig) as client:
        kept = kubernetes.client.CoreV1Api(client).read_namespaced_config_map("survivor", "default")
    assert kept.data == {"a": "1"}

    postmaster_dev.down(wipe=True)
    assert not isolated_state.exists()
    assert not any(_alive(pid) for pid in restarted.pids.values())


def test_up_restarts_a_half_dead_control_plane(isolated_state: Path) -> None:
    first = postmaster_dev.up()
    os.kill(first.pids["kube-apiserver"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(first.pids["kube-apiserver"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    broken = postmaster_dev.status()
    assert not broken.running
    assert not broken.healthy
    assert "partly running" in broken.describe()

    second = postmaster_dev.up()
    assert second.started
    assert not any(_alive(pid) for pid in first.pids.values())  # the survivors were stopped first
    with _client(second.kubeconfig) as client:
        kubernetes.client.CoreV1Api(client).read_namespace("default")


def test_up_timeout_names_the_log_and_leaves_nothing_running(isolated_state: Path) -> None:
    with pytest.raises(postmaster_dev.DevClusterError) as failure:
        postmaster_dev.up(timeout=0.0)
    message = str(failure.value)
    assert "timed out" in message
    assert str(isolated_state / "logs" / "etcd.log") in message
    assert "--data-dir=" in message  # the log's last lines (the launch line at least) are quoted
    state = postmaster_dev.status()
    assert not any(state.pids.values())


def test_env_without_a_cluster_says_to_run_up(isolated_state: Path) -> None:
    with pytest.raises(postmaster_dev.DevClusterError, match="postmaster dev up"):
        postmaster_dev.env()
