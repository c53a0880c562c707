"""The `postmaster` command: everything a person or a script types, on top of the operator's runtime.

``main.py`` builds the parser and runs a sub-command: ``run`` (the operator), ``crds``, ``quickstart``
(quickstart.py, with install.py to put manifests into a cluster), ``check`` (check.py: DNS),
``probe`` (probe.py: SMTP) and ``render`` (render.py: outputs without a cluster). ``dev`` (the local
control plane) is registered by ``postmaster.devcluster.cli``.
"""
