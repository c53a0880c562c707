"""The `postmaster` command: everything a person or a script types, on top of the operator's runtime.

``main.py`` builds the parser and runs a sub-command: ``run`` (the operator), ``crds``, ``quickstart``
(quickstart.py, with install.py to put manifests into a cluster), ``check`` (check.py: DNS), ``probe``
(probe.py: SMTP), ``render`` (render.py: outputs without a cluster) and ``dev`` (dev.py: the local control
plane, from the separate development package ``postmaster_dev`` when that is installed).
"""
