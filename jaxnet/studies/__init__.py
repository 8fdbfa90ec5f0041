"""Comparative studies: many seeds per configuration, statistics, tables and plots.

A :class:`Study` declares cells (settings such as activation, optimizer, learning rate, batch
size, dropout), a bundled data set, a budget in epochs and a number of seeds. :func:`run_study`
trains every cell with every seed through :func:`jaxnet.train.many.fit_many` (cells that differ
only in the learning rate share one vmapped program), evaluates on a held-out test split, and
reports mean ± standard error, a 95% t-interval and a rank with ties per cell.

::

    result = run_study("activations", seeds=8, epochs=10, out="out/studies")
    print(to_markdown(result))
    custom = Study("depth", cells=grid(hidden=[(100,), (100, 100), (100,) * 4]), dataset="wine")
    run_study(custom, seeds=4)

Command line: ``python -m jaxnet.studies NAME --seeds 8 --epochs 20 --out DIR``.
"""

from jaxnet.studies.builtin import STUDIES
from jaxnet.studies.command import main
from jaxnet.studies.report import load_result, plot_study, save_outputs, to_json, to_markdown
from jaxnet.studies.run import run_study
from jaxnet.studies.spec import Study, grid
from jaxnet.studies.stats import Summary, rank_with_ties, standard_error, summarize, t_critical

__all__ = [
    "STUDIES",
    "Study",
    "Summary",
    "grid",
    "load_result",
    "main",
    "plot_study",
    "rank_with_ties",
    "run_study",
    "save_outputs",
    "standard_error",
    "summarize",
    "t_critical",
    "to_json",
    "to_markdown",
]
