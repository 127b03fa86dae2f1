"""End to end on real traces: the environment's carbon is Σ energy × intensity of the raw files."""

import csv
import gzip

import numpy as np
import pytest

import envs  # noqa: F401  (registers the environment)
from envs.carbon_migration import CarbonMigrationEnv
from sim.paths import raw_data_dir
from sim.scenario import load_scenario
from sim.states import State

RAW = raw_data_dir()
EM = RAW / "carbon_intensity" / "electricitymaps" if RAW else None
needs_raw = pytest.mark.skipif(
    EM is None or not EM.is_dir(), reason="raw Electricity Maps traces absent (../shared/data)"
)

FILES = {"KR": "KR", "JP-TK": "JP-TK", "DE": "DE-LU", "US-CAL-CISO": "US-CAL-CISO"}


def raw_hourly(zone: str) -> dict[str, float]:
    with gzip.open(EM / f"{FILES[zone]}_2021-2023_hourly.csv.gz", "rt", encoding="utf-8") as f:
        return {
            row["Datetime (UTC)"][:13]: float(row["Carbon Intensity gCO₂eq/kWh (direct)"]) for row in csv.DictReader(f)
        }


@needs_raw
def test_episode_carbon_equals_energy_times_raw_intensity():
    env = CarbonMigrationEnv("faults", split="test")
    env.sim.record = True
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        m = env.action_masks()
        target = rng.choice(np.flatnonzero(m[: env.R + 1])) if rng.random() < 0.2 else env._continue_target()
        _, _, term, trunc, info = env.step(np.array([target, rng.integers(env.L)]))
        done = term or trunc
    zones = env.scenario.zones
    series = {z: raw_hourly(z) for z in zones}
    pue = [r.pue for r in env.scenario.regions]
    t0 = env.world.carbon.start_h + np.timedelta64(env.start_hour, "h")
    # host power of the V100 servers by hand (Cloud Carbon Footprint coefficients, AWS p3.16xlarge: 64 Broadwell
    # vCPUs at 0.71 / 3.69 W, the 488 - 69.65 GB above SPECpower's per-chip memory at 0.392 W/GB), per GPU of 8:
    # busy while training, idle in checkpoint I/O
    host_busy_w = (64 * 3.69 + (488 - 69.65) * 0.392) / 8
    host_idle_w = (64 * 0.71 + (488 - 69.65) * 0.392) / 8
    expected_g = host_kwh = 0.0
    for t, dt, r, s, power_w, n, dest in env.sim.segments:
        key = str(t0 + np.timedelta64(int(t // 3600), "h")).replace("T", " ")[:13]
        host_w = n * (host_busy_w if s == State.TOLERANCE else host_idle_w)
        host_kwh += host_w * dt / 3.6e6
        e_kwh = (power_w + host_w) * dt / 3.6e6
        expected_g += e_kwh * pue[r] * series[zones[r]][key]
        if s == State.MIGRATION:
            net_kwh = env.sim.ckpt_gb * 0.006 * dt / env.sim.xfer_s[r][dest]
            expected_g += net_kwh * 0.5 * (series[zones[r]][key] + series[zones[dest]][key])
    assert info["episode_metrics"]["carbon_g"] == pytest.approx(expected_g, rel=1e-9)
    assert info["episode_metrics"]["host_energy_kwh"] == pytest.approx(host_kwh, rel=1e-9) and host_kwh > 0
    assert info["episode_metrics"]["facility_energy_kwh"] >= info["episode_metrics"]["it_energy_kwh"] * 1.15 - 1e-9


def write_em_year(path, zone, year, base):
    hours = np.arange(np.datetime64(f"{year}-01-01T00"), np.datetime64(f"{year + 1}-01-01T00"), np.timedelta64(1, "h"))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "Datetime (UTC)",
                "Country",
                "Zone Name",
                "Zone Id",
                "Carbon Intensity gCO₂eq/kWh (direct)",
                "Carbon Intensity gCO₂eq/kWh (LCA)",
                "Low Carbon Percentage",
                "Renewable Percentage",
                "Data Source",
                "Data Estimated",
                "Data Estimation Method",
            ]
        )
        for i, h in enumerate(hours):
            w.writerow(
                [str(h).replace("T", " ") + ":00:00", "X", zone, zone, base + i % 24, base + 50, 0, 0, "t", "false", ""]
            )


def test_future_years_from_any_folder_run_with_no_code_change(tmp_path):
    for zone, base in {"KR": 400.0, "JP-TK": 450.0, "DE": 300.0, "US-CAL-CISO": 200.0}.items():
        (tmp_path / zone).mkdir()
        write_em_year(tmp_path / zone / "y2030.csv", zone, 2030, base)
    env = CarbonMigrationEnv(load_scenario("paper"), data_dir=str(tmp_path), period=("2030-01-01", "2030-03-01"))
    obs, info = env.reset(seed=0, options={"start_hour": 5})
    assert env.world.carbon.start_h == np.datetime64("2030-01-01T00", "h")
    assert env.view().intensity_g_per_kwh[0] == pytest.approx(400.0 + 5)
    obs, *_ = env.step(np.array([0, 4]))
    assert env.observation_space.contains(obs)
