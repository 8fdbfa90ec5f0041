"""Gradient diagnostics: per-layer statistics inside the compiled step, verdicts outside it.

- :mod:`~jaxnet.diagnostics.stats`: :func:`make_probe` and the ``jnp`` statistics it computes.
- :mod:`~jaxnet.diagnostics.verdicts`: :func:`diagnose`, :func:`diagnose_at_init` -> findings.
- :mod:`~jaxnet.diagnostics.report`: text table, JSON-ready report, PNG plots.
- :mod:`~jaxnet.diagnostics.monitor`: :class:`GradientMonitor`, the ``fit`` callback.

::

    monitor = GradientMonitor(model, every=50)
    ts, history = fit(model, loss, optimizer, x, y, monitor=monitor)
    for finding in monitor.findings:
        print(finding)
"""

from jaxnet.diagnostics.monitor import GradientMonitor
from jaxnet.diagnostics.report import (
    format_table,
    plot_gradient_flow,
    plot_heatmap,
    save_plots,
    to_report,
)
from jaxnet.diagnostics.stats import (
    activation_stats,
    dead_fraction,
    gradient_stats,
    make_probe,
    saturated_fraction,
    stats_at_init,
)
from jaxnet.diagnostics.verdicts import Finding, as_history, diagnose, diagnose_at_init

__all__ = [
    "Finding",
    "GradientMonitor",
    "activation_stats",
    "as_history",
    "dead_fraction",
    "diagnose",
    "diagnose_at_init",
    "format_table",
    "gradient_stats",
    "make_probe",
    "plot_gradient_flow",
    "plot_heatmap",
    "saturated_fraction",
    "save_plots",
    "stats_at_init",
    "to_report",
]
