"""The package's layering, checked from its source: data flows one way, and run files have one owner."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vaegan"
# Names as code spells them, quoted ("samples" and "recon" are left out: they are also metric names; "tensorboard"
# and "wandb" are also trackers' names).
RUN_FILE_NAMES = re.compile(r"""["'](config\.yaml|metrics\.jsonl|checkpoints|last\.pt|model\.pt|summary\.json|"""
                            r"""eval\.json|ablation\.json|report\.html|report\.md|figures|trackers\.json)["']""")


def imported_modules(folder: str) -> dict[str, set[str]]:
    """file -> the vaegan modules it imports."""
    found = {}
    for path in (PACKAGE / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = {n for n in names if n.startswith("vaegan")}
    return found


ABOVE_ALL = ("vaegan.experiment", "vaegan.ablation", "vaegan.reproduce", "vaegan.cli")
ABOVE_TRAINING = ("vaegan.tracking", *ABOVE_ALL)  # what the layers up to training never import


@pytest.mark.parametrize("folder, forbidden", [
    ("training", ("vaegan.evaluation", "vaegan.viz", *ABOVE_TRAINING)),
    ("evaluation", ("vaegan.training", *ABOVE_ALL)),
    ("viz", ("vaegan.training", *ABOVE_ALL)),
    ("runs", ("vaegan.training", "vaegan.evaluation", "vaegan.viz", "vaegan.models", "vaegan.data",
              "vaegan.speed", *ABOVE_TRAINING)),
    ("speed", ("vaegan.training", "vaegan.evaluation", "vaegan.viz", *ABOVE_TRAINING)),
    ("models", ("vaegan.training", "vaegan.evaluation", "vaegan.viz", "vaegan.runs", *ABOVE_TRAINING)),
    ("objectives", ("vaegan.speed", "vaegan.training", "vaegan.evaluation", "vaegan.viz", *ABOVE_TRAINING)),
    ("data", ("vaegan.models", "vaegan.objectives", "vaegan.speed", "vaegan.training", "vaegan.evaluation",
              "vaegan.viz", *ABOVE_TRAINING)),
    ("tracking", ("vaegan.evaluation", "vaegan.viz", "vaegan.export", "vaegan.api", *ABOVE_ALL)),
    ("api", ("vaegan.ablation", "vaegan.reproduce", "vaegan.cli")),
    ("ablation", ("vaegan.reproduce", "vaegan.cli", "vaegan.api")),
    ("reproduce", ("vaegan.cli",)),
])
def test_a_layer_imports_nothing_above_it(folder, forbidden):
    offending = {file: sorted(n for n in names if n.startswith(forbidden))
                 for file, names in imported_modules(folder).items()}
    assert {file: names for file, names in offending.items() if names} == {}


def test_run_file_names_are_spelled_only_in_the_runs_package():
    spelled = [f"{path.relative_to(PACKAGE)}:{match.group(0)}" for path in PACKAGE.rglob("*.py")
               if "runs" not in path.relative_to(PACKAGE).parts
               for match in RUN_FILE_NAMES.finditer(path.read_text())]
    assert spelled == []


TESTS = PACKAGE.parents[1] / "tests"
STARTS_TRAINING_PROCESSES = re.compile(r"\btorchrun\(|\*TORCHRUN|Popen\((?:.|\n)*\"-m\", \"vaegan\"|\"-m\", \"vaegan\"(?:.|\n)*Popen\(")


def test_tests_that_train_in_other_processes_are_marked_slow():
    """`-m "not slow"` gives a quick suite only if every torchrun launch and killed vaegan process is marked."""
    unmarked = []
    for path in TESTS.rglob("test_*.py"):
        source = path.read_text()
        for node in ast.parse(source).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            marked = any("mark.slow" in ast.unparse(decorator) for decorator in node.decorator_list)
            if STARTS_TRAINING_PROCESSES.search(ast.get_source_segment(source, node)) and not marked:
                unmarked.append(f"{path.relative_to(TESTS)}::{node.name}")
    assert unmarked == []


def test_html_pages_share_one_page_style():
    """Reports, comparisons, reproductions and ablation tables all go through viz.report.html_page."""
    pages = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if "<!DOCTYPE html" in path.read_text()]
    assert pages == ["viz/report.py"]


def test_the_package_warns_and_reports_progress_through_logging_only():
    """One channel: the command line prints log records (cli.py), the training bar prints its lines (progress.py);
    no other module prints, and no function takes a `log` callback."""
    printing = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                if re.search(r"\bprint\(", path.read_text())]
    assert sorted(printing) == ["cli.py", "training/progress.py"]
    callbacks = [f"{path.relative_to(PACKAGE)}:{node.name}" for path in PACKAGE.rglob("*.py")
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)
                 and any(arg.arg == "log" for arg in node.args.args + node.args.kwonlyargs)]
    assert callbacks == []


MEASUREMENT = re.compile(r"\d ?ms\b|GFLOP/s|\d images/s|\d% on CIFAR|minor faults|\d(\.\d+)?x as long")


def test_docstrings_say_why_and_leave_measurements_to_docs():
    """Timings, throughputs and accuracies belong in docs/ (performance.md), where they are dated and rerun."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                docstring = ast.get_docstring(node) or ""
                found += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in MEASUREMENT.finditer(docstring)]
    assert found == []
