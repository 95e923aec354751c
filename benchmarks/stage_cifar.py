"""Put CIFAR on a borrowed GPU machine in back-to-back calls, then run the full reproduction there.

    python benchmarks/stage_cifar.py [--sheets ../shared/data] [--stage .stage] [--part-mib 56]
                                     [--reproduce-budget 1]

One call to the borrowed machine carries at most 64 MiB of files, and the lossless CIFAR sheets
(../shared/data/cifar/, with unpack_cifar.py beside them) are about 193 MB. The machine keeps the ignored files
a call leaves behind for as long as it stays warm (about 30 s after a call returns), so the data is built there
in pieces: this script splits the sheets into .stage/part-1 .. part-N (each under --part-mib, the unpacker and
the manifest in the last) and writes .stage/calls.json, the N calls to make one right after another:

  call k < N: carry [".stage/part-k"]; copies its sheets into .cifar-sheets/ (ignored, so it stays there)
  call N:     carry [".stage/part-N"]; copies the rest, rebuilds the CIFAR folders in .cifar/ (md5-checked by
              unpack_cifar.py) and runs `benchmarks/gpu_check.py $OUT --only reproduce` on them, with its runs
              in .reproduce/ (so the same call made again continues a reproduction cut short)

Each call's command is complete: nothing needs to be decided between them. docs/performance.md says how to make
them and what came back.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHEETS = ROOT.parent / "shared" / "data"
STAGED = re.compile(r"part-\d+|calls\.json")  # what a stage folder holds, and all that is replaced
COPY = "mkdir -p .cifar-sheets && cp -a {part}/. .cifar-sheets/ && du -sh .cifar-sheets"
RUN = ("python3 .cifar-sheets/unpack_cifar.py .cifar && VAEGAN_DATA=$PWD/.cifar PYTHONPATH=src PYTHONUNBUFFERED=1 "
       "python3 benchmarks/gpu_check.py $OUT --only reproduce --reproduce-budget {budget} --work .reproduce "
       "--budget-seconds 570")


def plan_parts(sheets: Path, limit: int) -> list[list[Path]]:
    """The sheet files in parts of at most `limit` bytes each, in name order; the unpacker and the manifest
    (which the rebuild needs whole) go last."""
    needed = [sheets / "cifar" / "MANIFEST.json", sheets / "unpack_cifar.py"]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise SystemExit(f"stage_cifar: {', '.join(missing)} not found: --sheets names the folder holding cifar/ and "
                         "unpack_cifar.py (../shared/data)")
    files = sorted(p for p in (sheets / "cifar").rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    too_big = [str(path) for path in files if path.stat().st_size > limit]
    if too_big:
        raise SystemExit(f"stage_cifar: {too_big[0]} is larger than a part ({limit >> 20} MiB): raise --part-mib")
    parts: list[list[Path]] = [[]]
    size = 0
    for path in files:
        if parts[-1] and size + path.stat().st_size > limit:
            parts.append([])
            size = 0
        parts[-1].append(path)
        size += path.stat().st_size
    parts[-1] += needed
    return parts


def stage(sheets: Path, stage_dir: Path, part_mib: int, budget: float) -> list[dict]:
    """Write the parts under `stage_dir` (replacing earlier ones) and return the calls, in order."""
    if not stage_dir.is_relative_to(ROOT):
        raise SystemExit(f"stage_cifar: {stage_dir} is outside the repository ({ROOT}); a call carries only "
                         "paths inside it")
    if stage_dir.exists():
        if not stage_dir.is_dir():
            raise SystemExit(f"stage_cifar: {stage_dir} is a file; --stage names a folder")
        if any(not STAGED.fullmatch(path.name) for path in stage_dir.iterdir()):
            raise SystemExit(f"stage_cifar: {stage_dir} holds files this script did not write; name an empty or "
                             "new folder with --stage")
        shutil.rmtree(stage_dir)
    parts = plan_parts(sheets, part_mib << 20)
    calls = []
    for number, files in enumerate(parts, start=1):
        part = stage_dir / f"part-{number}"
        for path in files:
            target = part / path.relative_to(sheets)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        name = str(part.relative_to(ROOT))
        command = COPY.format(part=name)
        if number == len(parts):
            command += " && " + RUN.format(budget=budget)
        calls.append({"carry": [name], "command": command, "timeout_s": 600 if number == len(parts) else 120,
                      "mib": round(sum(p.stat().st_size for p in files) / 2**20, 1)})
    (stage_dir / "calls.json").write_text(json.dumps(calls, indent=2) + "\n")
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sheets", type=Path, default=SHEETS, help="the folder holding cifar/ and unpack_cifar.py")
    parser.add_argument("--stage", type=Path, default=ROOT / ".stage", help="where the parts go (ignored by git)")
    parser.add_argument("--part-mib", type=int, default=56, help="largest part (default 56: the tree travels too)")
    parser.add_argument("--reproduce-budget", type=float, default=1.0)
    args = parser.parse_args()
    calls = stage(args.sheets.resolve(), args.stage.resolve(), args.part_mib, args.reproduce_budget)
    for number, call in enumerate(calls, start=1):
        print(f"call {number}/{len(calls)} ({call['mib']} MiB): carry={call['carry']} timeout_s={call['timeout_s']}\n"
              f"  {call['command']}")
    print(f"written to {args.stage / 'calls.json'}; make the calls one right after another")


if __name__ == "__main__":
    main()
