"""examples/quickstart.ipynb runs from top to bottom (on the tiny config) and is committed without outputs."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def _parameters_cell(notebook):
    return next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))


def test_the_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "OVERRIDES" in _parameters_cell(notebook).source


def test_the_notebook_runs_on_the_tiny_config(tmp_path, tiny_args):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    overrides = dict(arg.split("=", 1) for arg in tiny_args)
    _parameters_cell(notebook).source = (f"RUN_DIR = {str(tmp_path / 'run')!r}\nOVERRIDES = {overrides!r}\n"
                                         "DEVICE = 'cpu'")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # a failing cell raises here
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 5  # curves, the class grid, a sample, reconstructions, the interpolation
    assert not [output for output in outputs if output.output_type == "error"]
    assert (tmp_path / "run" / "eval.json").is_file() and (tmp_path / "run" / "generator.pt2").is_file()
