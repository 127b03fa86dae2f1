"""Timeline and comparison plots say what they show: the deadline, power and clock apart, a visible home region."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from envs.plotting import fit_title, timeline_figure


def figure(t_end_h: float, deadline_h: float = 36.0):
    t = np.arange(0.0, t_end_h, 0.25)
    ci = np.full((3, int(t_end_h) + 1), 300.0)
    return timeline_figure(
        t,
        ci,
        ["KR", "DE", "US"],
        np.zeros(t.size, dtype=int),  # never leaves home (region 0)
        np.full(t.size, 1200.0),
        np.full(t.size, 1500.0),
        np.full(t.size, 1700.0),
        title="stay",
        deadline_h=deadline_h,
    )


def vertical_lines_at(ax, x: float) -> int:
    return sum(1 for ln in ax.get_lines() if len(ln.get_xdata()) == 2 and np.allclose(ln.get_xdata(), [x, x]))


def test_power_and_clock_have_their_own_panels():
    fig = figure(30.0)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "intensity (gCO2eq/kWh)",
        "job region",
        "power (kW)",
        "SM clock (MHz)",
    ]
    plt.close(fig)


def test_every_panel_marks_the_deadline_and_a_late_run_says_so():
    fig = figure(48.0)
    assert all(vertical_lines_at(ax, 36.0) == 1 for ax in fig.axes)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "deadline (36 h, ran 11.8 h past it)" in labels
    plt.close(fig)
    fig = figure(30.0)
    assert "deadline (36 h)" in fig.axes[0].get_legend_handles_labels()[1]
    plt.close(fig)


def test_home_region_line_sits_inside_the_region_panel():
    fig = figure(30.0)
    low, high = fig.axes[1].get_ylim()
    assert low == -0.5 and high == 2.5  # region 0 is half a row above the axis, not on it
    plt.close(fig)


def test_long_titles_wrap_to_the_figure_width():
    fig = plt.figure(figsize=(8.0, 5.0))
    title = "Energy vs completion time\n(paper, 2023 UTC, 20 episodes, real data: " + "/very/long" * 20 + ")"
    lines = fit_title(title, fig).split("\n")
    assert len(lines) > 2 and max(len(line) for line in lines) <= int(8.0 * 72 / (0.55 * 12.0))
    plt.close(fig)
