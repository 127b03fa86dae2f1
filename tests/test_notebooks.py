"""The notebooks run top to bottom (small settings) and are committed without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMALL = {
    "01_quickstart.ipynb": {},
    "02_compare_policies.ipynb": {"EPISODES": 2, "POLICIES": ["stay", "greedy", "caftm", "oracle"]},
    "03_train_agent.ipynb": {
        "TIMESTEPS": 256,
        "DEMO_EPISODES": 1,
        "DAGGER_ROUNDS": 0,
        "N_STEPS": 64,
        "BATCH_SIZE": 64,
        "EVAL_FREQ": 256,
        "EVAL_EPISODES": 1,
        "EPISODES": 2,
    },
    "04_fleet.ipynb": {"SCENARIO": "fleet_small", "POLICIES": ["stay", "packing", "oracle"]},
}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (name, cell.source[:60])


def with_parameters(nb, values: dict):
    """Replace ``NAME = ...`` lines of the cell tagged ``parameters`` (what papermill would inject)."""
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    for key, value in values.items():
        cell.source, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value!r}", cell.source)
        assert n == 1, f"{key} is not a parameter"
    return nb


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    values = dict(SMALL[name])
    if "OUT_DIR = " in nb.cells[1].source:
        values["OUT_DIR"] = str(tmp_path / "runs")
    nbclient.NotebookClient(
        with_parameters(nb, values),
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure drawn"
    text = "".join(o.get("text", "") for o in outputs)
    if name == "01_quickstart.ipynb":
        assert "caftm:" in text and "kg CO2eq" in text
    if name == "03_train_agent.ipynb":
        assert (tmp_path / "runs").is_dir() and "evaluate.py --agent" in text
