"""benchmarks/gpu_check.py runs end to end on the CPU at tiny sizes (CI has no GPU; the script must work the
first time a GPU is at hand)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_writes_its_summary_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out"), "--device", "cpu", "--smoke",
                             "--budget-seconds", "400"], capture_output=True, text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert report["tests"]["status"] == "ok", report["tests"]
    assert report["collectives"]["status"] == "ok", (tmp_path / "out" / "collectives.log").read_text()
    assert [r["status"] for r in report["throughput"]] == ["ok", "ok"]
    assert all(r["images_per_second"] > 0 for r in report["throughput"])
    runs = report["full_runs"]
    assert [r["status"] for r in runs] == ["ok", "ok"] and all(r["steps"] == 2 for r in runs)
    assert all(r["data"].startswith("shapes10") for r in runs)
    assert [(r["jobs"], r["status"]) for r in report["pool"]] == [(1, "ok"), (4, "ok")]
    cpu = report["cpu_ranks"]
    assert [(r["processes"], r["status"], r["world_size"]) for r in cpu] == [(1, "ok", 1), (2, "ok", 2)]
    assert [(r["members"], r["status"]) for r in report["fused"]] == [(2, "ok")]
    assert report["fused"][0]["per_run"] * 2 == report["fused"][0]["images_per_second"] > 0
    assert "| full run |" in (tmp_path / "out" / "summary.md").read_text()
