"""Overhead of the SLURM path: the tiny pipeline through SLURM versus locally, as a ratio.

    python bench/slurm_overhead.py [--params .test/params.yaml] [--init-seconds 2 20]

Needs root and Debian's slurm-wlm and munge: starts a single-node cluster with
workflow/scripts/slurm.sh (stopped at the end), then runs the whole pipeline from scratch in
fresh copies of this working tree: once with `snakemake --cores <nproc>`, and once per
``--init-seconds`` value with `snakemake --workflow-profile workflow/profiles/slurm
--slurm-init-seconds-before-status-checks <s>` (the profile's own value is 20 s; the plugin polls
job states from then on, 10 s more each time nothing finished). Prints the wall times, the
ratio SLURM / local and the extra seconds per job; writes bench/results/slurm_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "slurm.sh"


def fresh_project(dest: Path, params: Path) -> Path:
    """The working tree's files (tracked and untracked, not ignored) in ``dest``, a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout
    for name in filter(None, listed.split(b"\0")):
        src, dst = ROOT / os.fsdecode(name), dest / os.fsdecode(name)
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    shutil.copy2(params, dest / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def timed_run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its output (Snakemake's log); fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}")
    return took, proc.stdout


def finished_jobs(log: str) -> int:
    """Jobs Snakemake reports finished, its target rule ``all`` aside."""
    return len(re.findall(r"Finished jobid: \d+ \(Rule: (?!all\))", log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / ".test" / "params.yaml")
    parser.add_argument("--init-seconds", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "slurm_overhead.json")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("slurmctld") is None:
        sys.exit("needs root and SLURM (apt-get install slurm-wlm munge)")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        local = fresh_project(work / "local", args.params)
        local_s, log = timed_run(["snakemake", "--cores", str(cores)], local, env)
        jobs = finished_jobs(log)
        cluster = work / "slurm"
        subprocess.run([str(SCRIPT), "start", str(cluster)], check=True, stdout=subprocess.DEVNULL)
        try:
            env["SLURM_CONF"] = str(cluster / "slurm.conf")
            slurm = {}
            for seconds in args.init_seconds:
                project = fresh_project(work / f"slurm-{seconds}", args.params)
                cmd = [
                    "snakemake", "--workflow-profile", "workflow/profiles/slurm",
                    "--slurm-init-seconds-before-status-checks", str(seconds),
                ]
                took, log = timed_run(cmd, project, env)
                submitted = log.count("has been submitted with SLURM jobid")
                assert submitted == finished_jobs(log) == jobs, f"{submitted} SLURM jobs, {jobs} local jobs"
                slurm[str(seconds)] = {
                    "wall_s": took,
                    "ratio_to_local": took / local_s,
                    "extra_s_per_job": (took - local_s) / jobs,
                }
        finally:
            subprocess.run([str(SCRIPT), "stop", str(cluster)], check=True)
    result = {
        "machine": f"{platform.machine()}, {cores} cores, Python {platform.python_version()}",
        "params": str(args.params.relative_to(ROOT) if args.params.is_relative_to(ROOT) else args.params),
        "jobs": jobs,
        "local_cores": cores,
        "local_wall_s": local_s,
        "slurm_by_init_seconds": slurm,
    }
    print(f"tiny pipeline ({jobs} jobs): local --cores {cores}: {local_s:.1f} s")
    for seconds, row in slurm.items():
        print(
            f"SLURM, first status check after {seconds:>2} s: {row['wall_s']:.1f} s = "
            f"{row['ratio_to_local']:.2f}x local ({row['extra_s_per_job']:+.1f} s per job)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
