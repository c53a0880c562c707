"""Postmaster: a Kubernetes operator that manages how workloads send email."""

__version__ = "0.1.0"
GROUP = "postmaster.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
