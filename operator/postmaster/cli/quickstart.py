"""`postmaster quickstart` (what `make run` does): a cluster, the CRDs, the examples, the operator.

1. If $KUBECONFIG (or ~/.kube/config) reaches a cluster, use it.
2. Otherwise start the local control plane (`postmaster dev up`; it comes with the development package,
   postmaster_dev). When the user has no kubeconfig at all, write the local one to ~/.kube/config so a
   plain `kubectl get mail` in another shell works; otherwise print the `export KUBECONFIG=...` line to use.
3. Install crds/, apply examples/, then run the operator in the foreground.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import kubernetes

from postmaster.cli.dev import local_control_plane
from postmaster.cli.install import apply_documents, install_crds, load_documents

USER_KUBECONFIG = Path.home() / ".kube" / "config"


def _say(text: str) -> None:
    print(f"postmaster: {text}", file=sys.stderr, flush=True)


def reachable_kubeconfig() -> str | None:
    """The user's kubeconfig if it names a cluster that answers within a few seconds."""
    configured = os.environ.get("KUBECONFIG") or (str(USER_KUBECONFIG) if USER_KUBECONFIG.exists() else None)
    if not configured:
        return None
    try:
        api = kubernetes.config.new_client_from_config(config_file=configured)
        api.configuration.retries = 0
        kubernetes.client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:
        _say(f"the cluster in {configured} does not answer ({type(exc).__name__}); using a local control plane")
        return None
    _say(f"using the cluster in {configured}")
    return configured


def local_kubeconfig() -> str:
    dev = local_control_plane()
    _say(f"local control plane at {dev.server}")
    if not os.environ.get("KUBECONFIG") and not USER_KUBECONFIG.exists():
        USER_KUBECONFIG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dev.kubeconfig, USER_KUBECONFIG)
        USER_KUBECONFIG.chmod(0o600)
        _say(f"wrote {USER_KUBECONFIG} (context postmaster-dev): kubectl in any shell now talks to it")
    else:
        _say(f'in another shell: export KUBECONFIG={dev.kubeconfig}   (or: eval "$(postmaster dev env)")')
    return str(dev.kubeconfig)


def prepare(root: Path, *, examples: bool = True) -> str:
    kubeconfig = reachable_kubeconfig() or local_kubeconfig()
    os.environ["KUBECONFIG"] = kubeconfig
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    names = install_crds(api, root / "crds")
    _say(f"CRDs installed: {', '.join(names)}")
    if examples and (root / "examples").is_dir():
        applied = apply_documents(api, load_documents([root / "examples"]))
        _say(f"applied {len(applied)} objects from examples/ (namespace mail-demo)")
    _say("starting the operator; try `kubectl get mail -A` and `kubectl describe mailprovider -n mail-demo gmail`")
    return kubeconfig
