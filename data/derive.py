"""Build the small derived tables in ``data/derived/`` from the raw traces in ``../shared/data``.

Run ``python data/derive.py [--data-dir DIR]``. One function per table; ``main()`` calls each.
Attribution and what each file holds: ``data/derived/README.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a fresh clone

import numpy as np  # noqa: E402

from sim.paths import DERIVED_DIR, raw_data_dir  # noqa: E402


# --- carbon intensity: month x hour profiles (Electricity Maps, ODbL) -------------------------------------------
def derive_carbon_profiles(raw_dir: Path, out_path: Path = DERIVED_DIR / "carbon_profiles.csv") -> Path:
    """Per Electricity Maps zone, month (1-12) and UTC hour (0-23): mean and std (ddof=1) of direct and LCA
    intensity (gCO2eq/kWh) over all hours of the raw files (2021-2023), plus per zone and signal the lag-1-hour
    autocorrelation of the deseasonalised residual z = (x - mean[m, h]) / std[m, h]. Used by sim/carbon_synth.py.
    Source: raw_dir/carbon_intensity/electricitymaps (Electricity Maps via HewlettPackard/green-dcc; ODbL).
    """
    from loaders.carbon import load_carbon, scan_carbon_files

    em_dir = raw_dir / "carbon_intensity" / "electricitymaps"
    zones = sorted(scan_carbon_files(em_dir))
    rows = []
    stats = {}
    for signal in ("direct", "lca"):
        table = load_carbon(em_dir, zones, signal)
        hours = table.start_h + np.arange(table.n_hours)
        month_ix = hours.astype("datetime64[M]").astype(np.int64) % 12
        hour_ix = (hours - hours.astype("datetime64[D]")).astype(np.int64)
        cell = month_ix * 24 + hour_ix
        for zone, x in zip(zones, table.intensity_g_per_kwh):
            mean = np.array([x[cell == c].mean() for c in range(288)])
            std = np.array([x[cell == c].std(ddof=1) for c in range(288)])
            z = np.divide(x - mean[cell], std[cell], out=np.zeros_like(x), where=std[cell] > 0)
            stats[zone, signal] = (mean, std, np.corrcoef(z[:-1], z[1:])[0, 1])
    for zone in zones:
        (dm, ds, da), (lm, ls, la) = stats[zone, "direct"], stats[zone, "lca"]
        for c in range(288):
            rows.append(
                f"{zone},{c // 24 + 1},{c % 24},{dm[c]:.2f},{ds[c]:.2f},{da:.4f},{lm[c]:.2f},{ls[c]:.2f},{la:.4f}"
            )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    header = "zone,month,hour_utc,direct_mean,direct_std,direct_ar1,lca_mean,lca_std,lca_ar1"
    out_path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    print(f"wrote {out_path} ({len(zones)} zones, {len(rows)} rows)")
    return out_path


# --- WAN: zone -> cloud region mapping and zone x zone network (Skyplane, Apache-2.0) ----------------------------
def derive_zone_network(raw_dir: Path, out_dir: Path = DERIVED_DIR) -> Path:
    """``zone_cloud_regions.csv`` (the mapping in loaders/network.py) and ``zone_network.csv`` (every ordered
    zone pair: throughput_gbps, rtt_ms, egress_usd_per_gb, fallback rule). Source: raw_dir/network/skyplane."""
    from loaders.network import zone_network_table, zone_regions_table

    out_dir.mkdir(parents=True, exist_ok=True)
    zone_regions_table().to_csv(out_dir / "zone_cloud_regions.csv", index=False)
    table = zone_network_table(raw_dir)
    table.to_csv(out_dir / "zone_network.csv", index=False, float_format="%.8g")
    off_diag = table[table["src_zone"] != table["dst_zone"]]
    print(
        f"wrote {out_dir / 'zone_network.csv'} ({len(table)} pairs; fallbacks off-diagonal: "
        f"{(off_diag['fallback'] != 'none').sum()}, diagonal: {(table['src_zone'] == table['dst_zone']).sum()})"
    )
    return out_dir / "zone_network.csv"


# --- spot availability: free-fraction process (Parcae p3, Bamboo p2/g4dn; MIT) ---------------------------------
def derive_availability_process(raw_dir: Path, out_path: Path = DERIVED_DIR / "availability_process.json") -> Path:
    """Gaussian-copula AR(1) of the free fraction of a spot GPU pool, fitted at 15-min steps (loaders/spot.py).
    Source: raw_dir/spot_availability/{parcae,bamboo}."""
    import json

    from loaders.spot import fit_availability, load_spot_traces

    params = fit_availability(load_spot_traces(raw_dir), step_s=900.0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(params, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {out_path} (mean fraction {params['mean_fraction']}, "
        f"latent autocorr/h {params['autocorr_per_hour_latent']})"
    )
    return out_path


# --- GPU speed/power under DVFS (Perseus SOSP '24 + Zeus NSDI '23, Apache-2.0) --------------------------------
def derive_gpu_models(raw_dir: Path, out_path: Path = DERIVED_DIR / "gpu_models.csv") -> Path:
    """One row per (gpu, workload): t(f), P(f) coefficients, idle power, clock range and the fit's relative errors
    (loaders/gpu_power.py build_gpu_model_table, sim/gpu_fit.py). Source: raw_dir/gpu_power."""
    from loaders.gpu_power import build_gpu_model_table

    table = build_gpu_model_table(raw_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False, float_format="%.10g")
    print(
        f"wrote {out_path} ({len(table)} rows; worst median rel. error: time "
        f"{table['time_median_rel_err'].max():.3f}, power {table['power_median_rel_err'].max():.3f})"
    )
    return out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="raw data root (default: CARBON_DATA_DIR or ../shared/data)")
    raw_dir = raw_data_dir(parser.parse_args().data_dir)
    if raw_dir is None or not raw_dir.is_dir():
        sys.exit(f"raw data folder not found ({raw_dir}); pass --data-dir or set CARBON_DATA_DIR")
    derive_carbon_profiles(raw_dir)
    derive_zone_network(raw_dir)
    derive_availability_process(raw_dir)
    derive_gpu_models(raw_dir)


if __name__ == "__main__":
    main()
