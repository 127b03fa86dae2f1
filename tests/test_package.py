"""A wheel install runs without the source tree: scenarios, agent configs, derived tables and the real traces the
scenarios read are package data.

Builds the wheel from a copy of the repository, installs it (``--no-deps``) into a throw-away virtualenv that
sees this interpreter's site-packages only for the dependencies, and runs, from an empty folder (so the
checkout is not importable): ``gym.make`` and one whole episode of every shipped scenario, the shipped
hyper-parameters and the console entry points.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from sim.paths import REPO_ROOT
from sim.scenario import scenario_names

SCENARIOS = scenario_names()  # single-job (CarbonMigration-v0); the fleet ones are checked as package data
FLEETS = scenario_names("fleet")
CONFIGS = sorted(p.stem for p in (REPO_ROOT / "agents" / "configs").glob("*.yaml"))
DERIVED = sorted(p.name for p in (REPO_ROOT / "data" / "derived").iterdir() if p.is_file())
NOT_SHIPPED = (
    *(".git", ".venv", "runs", "results", "build", "*.egg-info", "__pycache__", "tests", "notebooks", "bench"),
    *("docs", "site"),
)

PROBE = """
import json, os, sys
import gymnasium as gym
import envs, sim
from agents.build import CONFIG_DIR, load_hyperparams
from baselines import make_policy
from baselines.runner import run_episode
from loaders.philly import philly_path
from sim.paths import DERIVED_DIR, SCENARIO_DIR, TRACES_DIR
from sim.scenario import scenario_names

out = {"sim": sim.__file__, "scenario_dir": str(SCENARIO_DIR), "derived_dir": str(DERIVED_DIR),
       "config_dir": str(CONFIG_DIR), "traces_dir": str(TRACES_DIR), "philly": str(philly_path()),
       "scenarios": scenario_names(), "derived": sorted(os.listdir(DERIVED_DIR)),
       "fleets": scenario_names("fleet"),
       "configs": sorted(p[:-5] for p in os.listdir(CONFIG_DIR) if p.endswith(".yaml")), "episodes": {}}
out["timesteps"] = load_hyperparams("maskable_ppo")["timesteps"]
for name in out["scenarios"]:
    env = gym.make("CarbonMigration-v0", scenario=name, split="test")
    r = run_episode(env.unwrapped, make_policy("stay"), seed=0, start_hour=0)
    out["episodes"][name] = {"carbon_g": r["carbon_g"], "completed": bool(r["completed"]),
                             "source": env.unwrapped.world.carbon.source}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("carbon_migration_gym-*.whl")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    target = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # dependencies (torch, SB3, ...) from this interpreter, after the venv's own site-packages
    (target / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir


def run_in(env_dir: Path, cwd: Path, *argv) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CARBON_DATA_DIR")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_wheel_install_runs_every_shipped_scenario_without_the_source_tree(venv, tmp_path):
    import json

    proc = run_in(venv, tmp_path, str(venv / "bin" / "python"), "-c", PROBE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # imported from the venv, not from the checkout
    for key in ("sim", "scenario_dir", "derived_dir", "config_dir", "traces_dir", "philly"):
        assert out[key].startswith(str(venv)), (key, out[key])
    assert out["scenarios"] == SCENARIOS and out["configs"] == CONFIGS and out["derived"] == DERIVED
    assert out["fleets"] == FLEETS == ["fleet", "fleet_small"]
    assert out["timesteps"] == 0  # agents/configs/maskable_ppo.yaml: imitation, no PPO step
    assert sorted(out["episodes"]) == SCENARIOS
    for name, ep in out["episodes"].items():
        assert ep["carbon_g"] > 0, name
        # nothing beside an installed package: the real traces shipped in the wheel
        assert ep["source"] == f"carbon-intensity files under {out['traces_dir']}", name


def test_console_entry_points(venv, tmp_path):
    for cmd, needle in (("cmg-train", "--algo"), ("cmg-evaluate", "--policies"), ("cmg-sweep", "--space")):
        proc = run_in(venv, tmp_path, str(venv / "bin" / cmd), "--help")
        assert proc.returncode == 0 and needle in proc.stdout, (cmd, proc.stderr[-2000:])
    proc = run_in(
        venv,
        tmp_path,
        str(venv / "bin" / "cmg-evaluate"),
        *("--policies", "stay", "--agent", "none", "--episodes", "1", "--out", str(tmp_path / "ev")),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "real data" in proc.stdout and "synthetic" not in proc.stdout.lower()
    assert (tmp_path / "ev" / "episodes.csv").is_file()
