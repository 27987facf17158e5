"""The EDA notebook runs headless on ../shared and is committed with outputs stripped."""

import json

import pytest

from tests.helpers import CCP, REPO, needs_shared

NOTEBOOK = REPO / "notebooks" / "eda.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@needs_shared
@pytest.mark.slow
def test_notebook_runs_headless(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CLOSETAI_CCP", str(CCP))
    monkeypatch.setenv("CLOSETAI_EDA_LIMIT", "60")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "60 labelled photos" in text
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 3
