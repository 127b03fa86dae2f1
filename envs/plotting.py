"""Matplotlib figures of an episode: intensity per region, the job's region, clock and power."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def timeline_figure(t_h, ci_g_per_kwh, region_names, region, clock_mhz, power_w, cap_w=None, title=""):
    """Three stacked panels sharing the time axis (hours since episode start)."""
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 7), sharex=True, constrained_layout=True)
    hours = np.arange(ci_g_per_kwh.shape[1])
    for r, name in enumerate(region_names):
        ax1.step(hours, ci_g_per_kwh[r], where="post", lw=1.2, label=name)
    # the job's region drawn over the intensity it is exposed to
    exposed = ci_g_per_kwh[region, np.minimum(t_h.astype(int), ci_g_per_kwh.shape[1] - 1)]
    ax1.plot(t_h, exposed, "k.", ms=3, label="job")
    ax1.set_ylabel("intensity (gCO2eq/kWh)")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax2.step(t_h, region, where="post", color="k")
    ax2.set_yticks(range(len(region_names)), region_names, fontsize=8)
    ax2.set_ylabel("job region")
    ax3.step(t_h, power_w / 1000.0, where="post", label="job power")
    if cap_w is not None and np.isfinite(cap_w).any():
        ax3.step(t_h, cap_w / 1000.0, where="post", ls="--", color="r", label="power cap")
    ax3.set_ylabel("power (kW)")
    ax3.set_xlabel("time since episode start (h)")
    ax3b = ax3.twinx()
    ax3b.step(t_h, clock_mhz, where="post", color="tab:green", alpha=0.6, label="SM clock")
    ax3b.set_ylabel("SM clock (MHz)")
    lines = ax3.get_legend_handles_labels()
    lines2 = ax3b.get_legend_handles_labels()
    ax3.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", bbox_to_anchor=(1.16, 1.0), fontsize=8)
    if title:
        fig.suptitle(title)
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
    )


def figure_to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb
