"""Jupyter integration: the ``%%container``/``%container`` magics (``magics``), the live cgroup chart
(``chart``), rich displays (``display``), the cell runner (``cellrunner``) and the kernel provisioner."""
