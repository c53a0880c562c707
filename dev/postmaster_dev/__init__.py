"""The local control plane: a real Kubernetes API server on this machine (``postmaster dev up|down|env``).

etcd (Debian's etcd-server), plus kube-apiserver and kube-controller-manager (garbage collector and
namespace controllers) built once from Debian bookworm's kubernetes 1.20.2 source. All on 127.0.0.1.

Development tooling, kept out of the operator: this package is its own distribution (``postmaster-dev``,
in ``dev/``), which ``make venv`` installs next to ``postmaster``. The operator never imports it; the
``postmaster`` command imports it lazily for ``postmaster dev`` and ``postmaster quickstart``.
"""

from .build import ensure_binaries
from .cluster import CONTEXT, DevCluster, Status, down, env, status, up
from .errors import DevClusterError, MissingPrerequisitesError
from .kubectl import ensure_helm, ensure_kubectl
from .paths import bin_dir, cache_dir, state_dir, tools_dir

__all__ = [
    "CONTEXT",
    "DevCluster",
    "DevClusterError",
    "MissingPrerequisitesError",
    "Status",
    "bin_dir",
    "cache_dir",
    "down",
    "ensure_binaries",
    "ensure_helm",
    "ensure_kubectl",
    "env",
    "state_dir",
    "status",
    "tools_dir",
    "up",
]
