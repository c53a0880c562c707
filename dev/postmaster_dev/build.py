"""Build kube-apiserver and kube-controller-manager once, into the user's cache directory."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from . import paths
from .errors import DevClusterError, MissingPrerequisitesError

BINARIES = ("kube-apiserver", "kube-controller-manager")
BUILD_SCRIPT = Path(__file__).with_name("build-kubernetes.sh")
APT_INSTALL_ENV = "POSTMASTER_DEV_APT_INSTALL"

# What build-kubernetes.sh needs: (command on PATH or absolute file, Debian package providing it).
BUILD_PREREQUISITES: tuple[tuple[str, str], ...] = (
    ("go", "golang-go"),
    ("rsync", "rsync"),
    ("jq", "jq"),
    ("make", "make"),
    ("dpkg-source", "dpkg-dev"),
    ("apt-get", "apt"),
    (
        "/usr/share/gocode/src/github.com/modern-go/reflect2/reflect2.go",
        "golang-github-modern-go-reflect2-dev",
    ),
    ("/usr/share/keyrings/debian-archive-keyring.gpg", "debian-archive-keyring"),
)
# What running the control plane needs (kube-apiserver and kube-controller-manager are static Go binaries).
RUN_PREREQUISITES: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd-server"),
    ("openssl", "openssl"),
)


def _present(what: str) -> bool:
    if what.startswith("/"):
        return os.path.exists(what)
    return shutil.which(what) is not None


def missing_packages(prerequisites: tuple[tuple[str, str], ...]) -> list[str]:
    """Debian packages (deduplicated, in order) whose marker command or file is absent."""
    missing: list[str] = []
    for what, package in prerequisites:
        if not _present(what) and package not in missing:
            missing.append(package)
    return missing


def _apt_install_allowed(install_deps: bool | None) -> bool:
    if install_deps is None:
        install_deps = os.environ.get(APT_INSTALL_ENV, "") == "1"
    return install_deps


def ensure_packages(prerequisites: tuple[tuple[str, str], ...], purpose: str, install_deps: bool | None = None) -> None:
    """Raise MissingPrerequisitesError naming the apt-get command, or run apt-get when root and allowed.

    Installing is opt-in: ``install_deps=True`` or env ``POSTMASTER_DEV_APT_INSTALL=1``, and only as root.
    """
    missing = missing_packages(prerequisites)
    if not missing:
        return
    if not (_apt_install_allowed(install_deps) and os.geteuid() == 0):
        raise MissingPrerequisitesError(purpose, missing)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f">> apt-get install {' '.join(missing)}", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env)
    still = missing_packages(prerequisites)
    if still:
        raise MissingPrerequisitesError(purpose, still)


def binaries_present(directory: Path | None = None) -> bool:
    directory = directory or paths.bin_dir()
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) held for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_binaries(install_deps: bool | None = None, output: TextIO | None = None) -> Path:
    """Return the directory holding kube-apiserver and kube-controller-manager, building them if missing.

    The build (build-kubernetes.sh) takes minutes, once per machine; its output is streamed to ``output``
    (default: stderr) and also kept in ``<cache>/build.log``.
    """
    cache = paths.cache_dir()
    bins = cache / "bin"
    if binaries_present(bins):
        return bins
    with file_lock(cache / ".build.lock"):
        if binaries_present(bins):  # built by someone else while we waited for the lock
            return bins
        ensure_packages(BUILD_PREREQUISITES, "to build kube-apiserver (once)", install_deps)
        out = output or sys.stderr
        log_path = cache / "build.log"
        print(
            f">> building kube-apiserver and kube-controller-manager {paths.KUBERNETES_VERSION} into {bins} "
            f"(a few minutes, once; log: {log_path})",
            file=out,
            flush=True,
        )
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                ["bash", str(BUILD_SCRIPT), str(cache)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
            )
            assert proc.stdout is not None  # noqa: S101 - guaranteed by stdout=PIPE
            for line in proc.stdout:
                log.write(line)
                log.flush()
                out.write(line)
                out.flush()
            code = proc.wait()
        if code != 0 or not binaries_present(bins):
            raise DevClusterError(f"building kube-apiserver failed (exit {code}); see {log_path}:\n{tail(log_path)}")
    return bins


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file (for error messages), or a note that it is missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"    ({path} does not exist)"
    return "\n".join("    " + line for line in data.splitlines()[-lines:])
