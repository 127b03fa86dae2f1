"""Matplotlib figures of an episode: intensity per region, the job's region, power against the cap, clock."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fit_title(title: str, fig, fontsize: float = 12.0) -> str:
    """``title`` with each line wrapped to the figure's width (about 0.55 em per character), so a long data-folder
    path does not run off the figure."""
    chars = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def timeline_figure(t_h, ci_g_per_kwh, region_names, region, clock_mhz, power_w, cap_w=None, title="", deadline_h=None):
    """Four stacked panels sharing the time axis (hours since episode start): the intensity of every region with
    the job's marked, the job's region, its power against the power cap (kW), its SM clock (MHz).

    :param deadline_h: the job's deadline (h since the start): a dashed line on every panel, and the time after it
        shaded, so a run that ends late shows it.
    """
    fig, (ax1, ax2, ax3, ax4) = plt.subplots(
        4, 1, figsize=(9, 8.5), sharex=True, constrained_layout=True, height_ratios=(3, 1.6, 2, 1.6)
    )
    hours = np.arange(ci_g_per_kwh.shape[1])
    for r, name in enumerate(region_names):
        ax1.step(hours, ci_g_per_kwh[r], where="post", lw=1.2, label=name)
    # the job's region drawn over the intensity it is exposed to
    exposed = ci_g_per_kwh[region, np.minimum(t_h.astype(int), ci_g_per_kwh.shape[1] - 1)]
    ax1.plot(t_h, exposed, "k.", ms=3, label="job")
    ax1.set_ylabel("intensity (gCO2eq/kWh)")
    n_regions = len(region_names)
    # thick, and inside the axes: a job that never leaves home (region 0) must not vanish into the x axis
    ax2.step(t_h, region, where="post", color="k", lw=2.0)
    ax2.set_yticks(range(n_regions), region_names, fontsize=8)
    ax2.set_ylim(-0.5, n_regions - 0.5)
    ax2.set_ylabel("job region")
    ax3.step(t_h, power_w / 1000.0, where="post", label="job power")
    if cap_w is not None and np.isfinite(cap_w).any():
        ax3.step(t_h, cap_w / 1000.0, where="post", ls="--", color="r", label="power cap")
    ax3.set_ylabel("power (kW)")
    ax3.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax4.step(t_h, clock_mhz, where="post", color="tab:green")
    ax4.set_ylabel("SM clock (MHz)")
    ax4.set_xlabel("time since episode start (h)")
    if deadline_h is not None and np.isfinite(deadline_h):
        t_end = float(t_h[-1]) if len(t_h) else 0.0
        for ax in (ax1, ax2, ax3, ax4):
            ax.axvline(deadline_h, ls="--", color="tab:red", lw=1.2)
            if t_end > deadline_h:
                ax.axvspan(deadline_h, t_end, color="tab:red", alpha=0.08, lw=0)
        late = f", ran {t_end - deadline_h:.1f} h past it" if t_end > deadline_h else ""
        ax1.plot([], [], ls="--", color="tab:red", label=f"deadline ({deadline_h:g} h{late})")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if title:
        fig.suptitle(fit_title(title, fig))
    return fig


def episode_figure(env):
    """The figure of ``env``'s episode so far (used by ``render_mode="rgb_array"``)."""
    h = env.history()
    n_h = int(np.ceil(env.sim.t_s / 3600.0)) + 1
    ci = env.world.carbon.intensity_g_per_kwh[:, env.start_hour : env.start_hour + n_h]
    return timeline_figure(
        h["t_h"],
        ci,
        env.scenario.region_names,
        h["region"],
        h["clock_mhz"],
        h["power_w"],
        h["cap_w"],
        title=f"{env.scenario.name}: episode from hour {env.start_hour}",
        deadline_h=env.scenario.job.deadline_hours,
    )


def figure_to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb
