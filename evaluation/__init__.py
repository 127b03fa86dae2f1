"""Held-out comparison of policies: the episode plan, per-episode rows, summary table, report and plots.

``evaluate.py`` reads top to bottom and calls into here:

- :mod:`evaluation.episodes` -- which episodes (start hour, reset seed) every policy runs, and one episode
  run through ``baselines.runner.run_episode`` turned into a flat row of physical metrics;
- :mod:`evaluation.report` -- per-policy means with Student-t 95% intervals, the printed table, ``report.md``;
- :mod:`evaluation.plots` -- the PNG figures.
"""
