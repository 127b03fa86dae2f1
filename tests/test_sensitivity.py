"""The report's sensitivity section: one row per model term, ranking and savings read off hand-made summaries."""

import pandas as pd

from evaluation.sensitivity import VARIANTS, sensitivity_markdown, with_embodied, write_variants
from sim.scenario import load_scenario


def summary(carbon: dict[str, float], met: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {"policy": list(carbon), "carbon_kg_mean": list(carbon.values()), "deadline_met_rate": [met] * len(carbon)}
    )


def test_rows_show_ranking_change_and_savings_against_stay():
    base = summary({"stay": 20.0, "greedy": 10.0, "dvfs_only": 18.0})
    variants = {t: base for t in VARIANTS}
    variants["host_power"] = summary({"stay": 10.0, "greedy": 5.0, "dvfs_only": 11.0}, met=0.5)
    md = sensitivity_markdown(base, variants, episodes=4)
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(lines) == 1 + 1 + len(VARIANTS)  # header, headline, one per term
    headline = next(ln for ln in lines if ln.startswith("| all terms on"))
    assert "greedy < dvfs_only < stay | yes | -50 % (100% met) | -10 % (100% met) |" in headline
    host = next(ln for ln in lines if ln.startswith("| host power off"))
    # dvfs_only now emits more than stay: (11 - 10) / 10 = +10 %, and the ranking changed
    assert "greedy < stay < dvfs_only | **no** | -50 % (50% met) | +10 % (50% met) |" in host


def test_embodied_row_adds_embodied_to_operational_carbon():
    episodes = pd.DataFrame(
        {
            "policy": ["stay", "stay", "greedy", "greedy"],
            "carbon_kg": [20.0, 22.0, 10.0, 12.0],
            "embodied_kg": [3.0, 3.0, 4.0, 4.0],
        }
    )
    table = with_embodied(episodes).set_index("policy")["carbon_kg_mean"]
    assert table["stay"] == 24.0 and table["greedy"] == 15.0
    md = sensitivity_markdown(summary({"stay": 21.0, "greedy": 11.0}), {}, 2, episodes)
    row = next(ln for ln in md.splitlines() if "embodied carbon |" in ln)
    assert "| greedy < stay | yes | -38 % |" in row  # (15 - 24) / 24


def test_variant_files_switch_exactly_one_term(tmp_path):
    sc = load_scenario("paper")
    paths = write_variants(sc, tmp_path)
    assert set(paths) == set(VARIANTS)
    host = load_scenario(paths["host_power"])
    assert not host.model.host_power and host.model.checkpoint_stall and host.faults == sc.faults
    assert host.job == sc.job and host.regions == sc.regions
    assert load_scenario(paths["shortages"]).faults.shortage_scale == 0.0
    assert load_scenario(paths["transfer_kwh_per_gb"]).transfer_kwh_per_gb == 0.06
    assert load_scenario(paths["restart_s"]).model.restart_s == 0.0


def test_checkpoint_variants_change_only_the_model_size(tmp_path):
    from evaluation.sensitivity import write_checkpoint_variants
    from sim.scenario import load_scenario

    base = load_scenario("paper")
    paths = write_checkpoint_variants(base, tmp_path, params=(1e9, 70e9))
    big = load_scenario(paths[70e9])
    assert big.job.params == 70e9 and big.job.checkpoint_gb == 70e9 * 16 / 1e9  # 1,120 GB
    assert big.job.minibatches == base.job.minibatches and big.regions == base.regions


def test_checkpoint_savings_are_paired_changes_against_stay():
    import pandas as pd

    from evaluation.sensitivity import checkpoint_markdown, checkpoint_savings

    ep = pd.DataFrame(
        {
            "policy": ["stay", "stay", "greedy", "greedy"],
            "episode": [0, 1, 0, 1],
            "carbon_kg": [10.0, 20.0, 5.0, 15.0],
            "deadline_met": [True, True, True, False],
            "late_h": [0.0, 0.0, 0.0, 2.0],
        }
    )
    t = checkpoint_savings({1e9: ep})
    # (5 - 10) / 10 = -50 %, (15 - 20) / 20 = -25 %: mean -37.5 %
    assert t.loc[0, "change_vs_stay_pct"] == -37.5 and t.loc[0, "deadline_met_rate"] == 0.5
    assert t.loc[0, "late_h_mean"] == 1.0
    md = checkpoint_markdown(t, 16.0, None)
    assert "| 1B | 16 | -38 % (50%) |" in md
