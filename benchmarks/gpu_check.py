"""One command for a borrowed GPU: the device tests, training throughput over precision x compile, the
20-epoch-equivalent run of both reference presets, an ablation grid with 1 job against several jobs sharing the
GPU, one run on 1 process against 2 torchrun processes on the machine's CPU cores, K = 1..32 runs trained as one
fused group (`fused`), and the full reproduction (`reproduce`, only when asked for with --only); summarised in
OUT/summary.md and OUT/summary.json (rewritten after every part, so a check cut short still leaves one).

    PYTHONPATH=src python benchmarks/gpu_check.py OUT [--device cuda] [--budget-seconds 450] [--only PARTS]
    PYTHONPATH=src python benchmarks/gpu_check.py OUT --only reproduce [--reproduce-budget 1] [--work DIR]

`reproduce` runs `vaegan reproduce all --budget B --seeds 2` (fused groups, the default) in DIR (default
OUT/reproduce; kept there, so the same command continues a reproduction cut short) and brings back
OUT/report.md, OUT/report.html and OUT/reproduce.tar.gz (the tables, figures and each run's summary).
benchmarks/stage_cifar.py prepares the calls that put CIFAR on a borrowed machine and run it there.

It needs only what a stock PyTorch GPU image has (torch, numpy, Pillow, PyYAML, tqdm, matplotlib,
scikit-learn; pytest for the test part, which is skipped with a note without it) and no network. Every part runs
in its own process with a time limit taken from the budget, so one failure or hang costs only its own part.

Data: the full runs use CIFAR when $VAEGAN_DATA holds `cifar-100-python/` and `cifar-10-batches-py/`, else
shapes10 at the same step count (7,800 steps of 128, the references' 20 epochs), and the summary says which.
The CIFAR folders are ~180 MB each, more than one call to a borrowed machine may carry (64 MiB): stage them on
the GPU machine first (unpack or copy them into a folder there and point $VAEGAN_DATA at it), or accept the
shapes10 stand-in, whose step time is the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("vae-cifar10-regularized", "cvaegan-cifar100")
REFERENCE_STEPS = 7800  # 20 epochs of 390 batches of 128
SETTINGS = [("fp32", "off"), ("bf16", "off"), ("fp32", "default"), ("bf16", "default"),
            ("fp32", "reduce-overhead"), ("bf16", "reduce-overhead")]
DEVICE_TESTS = ["tests/data/test_batch_loader.py", "tests/training/test_device_loop.py", "tests/speed/test_training_speed.py"]
TINY = ["model.channels=8", "model.d_channels=8", "model.latent_dim=8", "model.embed_dim=4", "train.batch_size=8",
        "train.eval_images=32"]


PARTS = ("tests", "collectives", "throughput", "full_runs", "pool", "cpu_ranks", "fused", "compile")
ON_REQUEST = ("reproduce",)  # parts that run only when --only names them
FUSE_SIZES = (1, 4, 8, 16, 32)  # runs trained as one group in the `fused` part
SMOKE_STEP = ["--batch-size", "8", "--steps", "1", "--warmup", "1", "--windows", "1", "--matmul-repeats", "1",
              "--matmul-size", "512"]  # throughput.py's settings for --smoke


class Budget:
    """Seconds left for the check; each part gets at most what remains (and its own cap)."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        return max(0.0, min(cap, self.deadline - time.monotonic()))


def run(command: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> dict:
    """Run `command` from the repository root with src/ importable (and `env` added); its output goes to `log`."""
    if timeout < 5:
        return {"status": "skipped", "reason": "out of time", "seconds": 0.0}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.monotonic()
    with open(log, "w") as out:
        try:
            code = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
    return {"status": status, "seconds": round(time.monotonic() - started, 1), "log": log.name}


def device_tests(args, budget: Budget, out: Path) -> dict:
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "reason": "pytest is not installed here: carry its wheels (see the device "
                "README) or run `pytest -k cuda " + " ".join(DEVICE_TESTS) + "` where it is"}
    selection = [] if args.device == "cpu" else ["-k", args.device]
    files = DEVICE_TESTS
    if args.smoke:  # the script's own check: one quick file proves the harness; the main suite runs them all
        selection, files = selection + ["-m", "not slow"], DEVICE_TESTS[:1]
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection, *files],
                 budget.left(120), out / "tests.log")
    lines = (out / "tests.log").read_text().strip().splitlines()
    return {**result, "summary": lines[-1] if lines else ""}


def throughput(args, budget: Budget, out: Path, settings: list[tuple[str, str]]) -> list[dict]:
    rows = []
    sizes = SMOKE_STEP if args.smoke else ["--steps", "30", "--warmup", "5", "--windows", "3"]
    for preset in PRESETS:
        for precision, compile_mode in settings:
            name = f"{preset}-{precision}-{compile_mode}"
            numbers = out / f"{name}.json"
            result = run([sys.executable, "benchmarks/throughput.py", "--device", args.device, "--preset", preset,
                          "--precision", precision, "--compile", compile_mode, "--skip-shapes", "--json",
                          str(numbers), *sizes], budget.left(120), out / f"{name}.log")
            if numbers.is_file():
                result.update(json.loads(numbers.read_text()))
                numbers.unlink()
            rows.append({"preset": preset, "precision": precision, "compile": compile_mode, **result})
    return rows


def full_runs(args, budget: Budget, out: Path, fastest: dict[str, dict]) -> list[dict]:
    data = os.environ.get("VAEGAN_DATA", "")
    on_cifar = bool(data) and all((Path(data) / f).is_dir() for f in ("cifar-100-python", "cifar-10-batches-py"))
    rows = []
    for preset in PRESETS:
        best = fastest.get(preset, {"precision": "fp32", "compile": "off"})
        steps = 2 if args.smoke else REFERENCE_STEPS
        overrides = [f"train.max_steps={steps}", f"train.device={args.device}", f"train.precision={best['precision']}",
                     f"train.compile={best['compile']}", "train.eval_images=2000", f"train.ckpt_every={steps}"]
        overrides += [] if on_cifar else ["data.name=shapes10"]
        overrides += TINY if args.smoke else []
        run_dir = out / "runs" / preset
        result = run([sys.executable, "-m", "vaegan", "train", "--preset", preset, "--run-dir", str(run_dir),
                      "--overwrite", *overrides], budget.left(240), out / f"train-{preset}.log")
        summary = run_dir / "summary.json"
        if summary.is_file():
            record = json.loads(summary.read_text())
            result.update(steps=record["step"], train_seconds=record["train_seconds"],
                          images_per_second=record["images_per_second"], test=record["test"],
                          settings=record["speed"]["describe"])
        rows.append({"preset": preset, "data": "CIFAR" if on_cifar else "shapes10 (same step count)", **result})
    return rows


POOL_GRID = """
base: vae-cifar10-regularized
overrides: {data.name: shapes10, train.max_steps: 400, train.eval_images: 2000, train.ckpt_every: 400}
variants:
  none: {model.dropout: 0.0, model.batchnorm: false, optim.weight_decay: 0.0, data.hflip: false,
         data.crop_padding: 0}
  all: {}
"""


def pool(args, budget: Budget, out: Path) -> list[dict]:
    """The same 4-cell grid (2 variants x 2 seeds) with 1 job, then with 4 jobs sharing the device: small
    32x32 models leave a big GPU mostly idle, which concurrent cells use."""
    grid = out / "pool-grid.yaml"
    grid.write_text(POOL_GRID.replace("400", "2") if args.smoke else POOL_GRID)
    sizes = ["--measure-images", "32", *TINY] if args.smoke else []
    rows = []
    for jobs in (1, 4):
        devices = "cuda:0" if args.device == "cuda" else args.device
        flags = ["--device", args.device] if jobs == 1 else ["--jobs", "4", "--devices", devices,
                                                            "--jobs-per-device", "4"]
        result = run([sys.executable, "-m", "vaegan", "ablate", str(grid), "--seeds", "2", "--out",
                      str(out / f"ablate-jobs{jobs}"), *flags, *sizes], budget.left(150),
                     out / f"ablate-jobs{jobs}.log")
        rows.append({"jobs": jobs, "cells": 4, **result})
    return rows


def cpu_ranks(args, budget: Budget, out: Path) -> list[dict]:
    """One CPU run on 1 process with T threads against 2 torchrun processes with T/2 threads each (the same
    cores): whether data-parallel processes beat intra-op threads on this machine's CPU."""
    threads = max(2, min(16, (os.cpu_count() or 2)) // 2 * 2)
    steps = 2 if args.smoke else 40
    common = ["--preset", "vae-cifar10-regularized", "data.name=shapes10", f"train.max_steps={steps}",
              "train.device=cpu", "train.eval_images=256", f"train.ckpt_every={steps}", *(TINY if args.smoke else [])]
    rows = []
    for processes in (1, 2):
        launcher = ([sys.executable, "-m", "vaegan"] if processes == 1 else
                    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                     "-m", "vaegan"])
        run_dir = out / "runs" / f"cpu-{processes}-processes"
        result = run([*launcher, "train", "--run-dir", str(run_dir), "--overwrite", *common,
                      f"train.threads={threads // processes}"], budget.left(120), out / f"cpu-{processes}.log",
                     env={"OMP_NUM_THREADS": str(threads // processes)})
        summary = run_dir / "summary.json"
        if summary.is_file():
            record = json.loads(summary.read_text())
            result.update(images_per_second=record["images_per_second"], world_size=record.get("world_size", 1))
        rows.append({"processes": processes, "threads_each": threads // processes, **result})
    return rows


COLLECTIVES = """
import sys, torch, torch.distributed as dist
from vaegan.config import ModelConfig
from vaegan.models import build_model
from vaegan.runs.checkpoint import rng_state
from vaegan.training import distributed
device = torch.device(sys.argv[1])
group = {"store": dist.HashStore(), "rank": 0, "world_size": 1}  # in-process: no port to clash
if device.type == "cuda":
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", device_id=torch.device("cuda", 0), **group)
else:
    dist.init_process_group("gloo", **group)
ranks = distributed.Ranks(0, 2)  # takes every collective path; the group itself has one process
model = build_model(ModelConfig(name="vaegan", channels=8, d_channels=8, latent_dim=8), 10).to(device)
optimizer = torch.optim.Adam(model.parameters())
x = torch.randn(4, 3, 32, 32, device=device)
model(x)[0].square().mean().backward()
before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
flag = torch.ones((), device=device)
distributed.average_step([optimizer], model, flag, 1)
assert all(torch.equal(a, p.grad) for a, p in zip(before, [p for p in model.parameters() if p.grad is not None]))
sums = distributed.total(torch.arange(5, dtype=torch.float64, device=device))
assert sums.tolist() == [0, 1, 2, 3, 4] and flag.item() == 1
assert distributed.gather(rng_state(), 1)[0]["torch"].numel() > 0
assert distributed.from_main({"step": 3}, ranks) == {"step": 3}
distributed.barrier(ranks)
assert distributed.leave() and not dist.is_initialized()
print("collectives ok on", device)
"""


def collectives(args, budget: Budget, out: Path) -> dict:
    """Every collective the distributed training uses, once, on this device's backend (NCCL on CUDA) in a
    one-process group: one GPU cannot hold two NCCL ranks, and the CPU tests cover two gloo ranks."""
    return run([sys.executable, "-c", COLLECTIVES, args.device], budget.left(60), out / "collectives.log")


def fused(args, budget: Budget, out: Path) -> list[dict]:
    """Images/s of K runs of each preset trained as one fused group (grouped layers), K = 1 as the baseline;
    eager only (a whole-step CUDA graph is not built yet)."""
    rows = []
    sizes = SMOKE_STEP if args.smoke else ["--steps", "20", "--warmup", "3", "--windows", "2"]
    for preset in PRESETS[:1] if args.smoke else PRESETS:
        for members in (2,) if args.smoke else FUSE_SIZES:
            name = f"fused-{preset}-{members}"
            numbers = out / f"{name}.json"
            result = run([sys.executable, "benchmarks/throughput.py", "--device", args.device, "--preset", preset,
                          "--fuse", str(members), "--grouped", "on", "--skip-shapes", "--json", str(numbers), *sizes],
                         budget.left(90), out / f"{name}.log")
            if numbers.is_file():
                record = json.loads(numbers.read_text())
                numbers.unlink()
                result.update(images_per_second=record["images_per_second"],
                              per_run=record["images_per_second"] / members,
                              fraction_of_bound=record["fraction_of_bound"])
            rows.append({"preset": preset, "members": members, **result})
    return rows


REPRODUCED = ("*.md", "*.html", "*.csv", "summary.json", "*.png")  # found at any depth; PNGs of figures/ only


def reproduce(args, budget: Budget, out: Path) -> dict:
    """The full reproduction, fused, on CIFAR from $VAEGAN_DATA (else shapes10 with the same step counts):
    report.md, report.html and a tarball of the tables, figures and run summaries come back in OUT."""
    import tarfile

    data = os.environ.get("VAEGAN_DATA", "")
    on_cifar = bool(data) and all((Path(data) / f).is_dir() for f in ("cifar-100-python", "cifar-10-batches-py"))
    work = (args.work or out / "reproduce").resolve()
    overrides = ([] if on_cifar else ["data.name=shapes10"]) + (TINY if args.smoke else [])
    result = run([sys.executable, "-m", "vaegan", "reproduce", "all", "--budget", str(args.reproduce_budget),
                  "--seeds", "2", "--out", str(work), "--device", args.device, *overrides],
                 budget.left(args.budget_seconds), out / "reproduce.log")
    for page in ("report.md", "report.html"):
        if (work / page).is_file():
            (out / page).write_bytes((work / page).read_bytes())
    with tarfile.open(out / "reproduce.tar.gz", "w:gz") as tar:
        for pattern in REPRODUCED:
            for path in sorted(work.rglob(pattern)):
                if path.suffix != ".png" or path.parent.name == "figures":
                    tar.add(path, arcname=str(path.relative_to(work)))
    return {**result, "budget": args.reproduce_budget, "data": "CIFAR" if on_cifar else "shapes10 (same step counts)",
            "report": (out / "report.md").is_file()}


def write_summary(out: Path, report: dict) -> None:
    tests = report.get("tests", {})
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# GPU check on {report['device_name']} ({report['torch']})", "",
             f"Device tests: {tests.get('status', '-')} {tests.get('summary') or tests.get('reason', '')}",
             "", "| preset | precision | compile | images/s | first step s | status |", "|---|---|---|---|---|---|"]
    for row in report.get("throughput", []):
        ips = f"{row['images_per_second']:.0f}" if "images_per_second" in row else "-"
        first = f"{row['first_step_seconds']:.1f}" if "first_step_seconds" in row else "-"
        lines.append(f"| {row['preset']} | {row['precision']} | {row['compile']} | {ips} | {first} | {row['status']} |")
    lines += ["", "| full run | data | settings | steps | train s | images/s | status |", "|---|---|---|---|---|---|---|"]
    for row in report.get("full_runs", []):
        lines.append(f"| {row['preset']} | {row['data']} | {row.get('settings', '-')} | {row.get('steps', '-')} | "
                     f"{row.get('train_seconds', '-')} | {row.get('images_per_second', '-')} | {row['status']} |")
    lines += ["", f"Distributed collectives: {report.get('collectives', {}).get('status', '-')}"]
    lines += ["", "| ablate, 4 cells | wall s | status |", "|---|---|---|"]
    for row in report.get("pool", []):
        lines.append(f"| --jobs {row['jobs']} | {row['seconds']} | {row['status']} |")
    lines += ["", "| CPU run | threads each | images/s | status |", "|---|---|---|---|"]
    for row in report.get("cpu_ranks", []):
        lines.append(f"| {row['processes']} process(es) | {row['threads_each']} | {row.get('images_per_second', '-')}"
                     f" | {row['status']} |")
    lines += ["", "| fused (eager, grouped layers) | runs | images/s per run | images/s in all | fraction of bound | "
              "status |", "|---|---|---|---|---|---|"]
    for row in report.get("fused", []):
        numbers = [f"{row[key]:.0f}" if key in row else "-" for key in ("per_run", "images_per_second")]
        fraction = f"{row['fraction_of_bound']:.1%}" if "fraction_of_bound" in row else "-"
        lines.append(f"| {row['preset']} | {row['members']} | {numbers[0]} | {numbers[1]} | {fraction} | "
                     f"{row['status']} |")
    if "reproduce" in report:
        row = report["reproduce"]
        lines += ["", f"Reproduction (budget {row['budget']:g}, 2 seeds, {row['data']}): {row['status']} in "
                  f"{row['seconds']} s; report {'written' if row['report'] else 'missing'}"]
    lines += ["", f"Total {report['seconds']:.0f} s."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for summary.md, summary.json and the logs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-seconds", type=float, default=450.0, help="the whole check (default 450)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script itself, on any device")
    parser.add_argument("--only", help=f"comma-separated parts to run, of {','.join(PARTS + ON_REQUEST)} (default "
                        f"all but {','.join(ON_REQUEST)})")
    parser.add_argument("--reproduce-budget", type=float, default=1.0,
                        help="reproduce: the fraction of the references' schedules (default 1)")
    parser.add_argument("--work", type=Path, help="reproduce: where its runs live (default OUT/reproduce)")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    started, budget = time.monotonic(), Budget(args.budget_seconds)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") and torch.cuda.is_available() else args.device
    report = {"device": args.device, "device_name": name, "torch": torch.__version__}

    def record(part: str, value) -> None:
        report[part] = value
        report["seconds"] = time.monotonic() - started
        write_summary(args.out, report)

    wanted = set(args.only.split(",")) if args.only else set(PARTS)
    if "tests" in wanted:
        record("tests", device_tests(args, budget, args.out))
    if "collectives" in wanted:
        record("collectives", collectives(args, budget, args.out))
    # Eager settings first, then the full runs with the faster of them, the shared-device grid and the CPU
    # processes, then compilation with what time is left.
    if "throughput" in wanted:
        eager = [s for s in SETTINGS if s[1] == "off"][:1 if args.smoke else None]
        record("throughput", throughput(args, budget, args.out, eager))
    fastest = {}
    for row in report.get("throughput", []):
        if "images_per_second" in row and row["images_per_second"] > fastest.get(row["preset"], {}).get(
                "images_per_second", 0):
            fastest[row["preset"]] = row
    if "full_runs" in wanted:
        record("full_runs", full_runs(args, budget, args.out, fastest))
    if "pool" in wanted:
        record("pool", pool(args, budget, args.out))
    if "cpu_ranks" in wanted:
        record("cpu_ranks", cpu_ranks(args, budget, args.out))
    if "fused" in wanted:
        record("fused", fused(args, budget, args.out))
    if "reproduce" in wanted:
        record("reproduce", reproduce(args, budget, args.out))
    if "compile" in wanted and not args.smoke:
        record("throughput", report.get("throughput", []) + throughput(args, budget, args.out,
                                                                       [s for s in SETTINGS if s[1] != "off"]))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
