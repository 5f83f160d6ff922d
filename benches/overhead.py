#!/usr/bin/env python3
"""What the statistics and the cost model cost the host.

Builds the nestemu binary twice, as shipped and with the measuring-only
feature `uncounted` (no counters, no modelled cycles: the clock advances one
cycle per instruction), writes the images of workloads (a)-(f), and runs
each workload on both binaries, alternated, the best of N runs of host CPU
time (user + system, `getrusage` of the child) each. Prints the times and
the overhead: counted time / uncounted time - 1.

    python3 benches/overhead.py [RUNS] [WORKLOADS...]

RUNS defaults to 3; WORKLOADS to a b c d e f. Run it from the repository's
root. The sizes are the ones README's figures use.
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile

SIZES = {"a": 20_000_000, "b": 300, "c": 300, "d": 300, "e": 300_000, "f": 300_000}
AMD = {"d", "f"}
NAMES = {
    "a": "integer loop",
    "b": "memory loop, paging",
    "c": "memory loop, L2 under EPT",
    "d": "memory loop, L2 under NPT",
    "e": "VMCALL round trips",
    "f": "VMMCALL round trips",
}


def build(tmp, features):
    """Builds the nestemu binary with `features` and copies it into `tmp`."""
    cmd = ["cargo", "build", "--release", "--bin", "nestemu"]
    if features:
        cmd += ["--features", features]
    subprocess.run(cmd, check=True)
    name = "nestemu-" + (features.replace("/", "-") if features else "counted")
    dst = os.path.join(tmp, name)
    shutil.copy("target/release/nestemu", dst)
    return dst


def cpu_time(binary, image, cpu):
    """Host CPU time (s) of one run of `image`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [binary, "run", "--kernel", image, "--mem", "256", "--cpu", cpu,
         "--max-insns", "10000000000"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    args = sys.argv[1:]
    runs = int(args.pop(0)) if args and args[0].isdigit() else 3
    loads = args or list(SIZES)
    for w in loads:
        if w not in SIZES:
            sys.exit(f"unknown workload {w}: one of {' '.join(SIZES)}")
    tmp = tempfile.mkdtemp(prefix="nestemu-overhead-")
    try:
        uncounted = build(tmp, "nestemu/uncounted")
        counted = build(tmp, "")
        print(f"{'workload':<32} {'counted s':>10} {'uncounted s':>12} {'overhead':>9}")
        for w in loads:
            d = os.path.join(tmp, w)
            subprocess.run(
                ["cargo", "run", "-q", "--release", "-p", "nestemu-benches",
                 "--example", "images", "--", w, str(SIZES[w]), d],
                check=True, stdout=subprocess.DEVNULL)
            image = os.path.join(d, "image.bin")
            cpu = "amd" if w in AMD else "intel"
            best = [float("inf"), float("inf")]
            for _ in range(runs):
                for i, b in enumerate([counted, uncounted]):
                    best[i] = min(best[i], cpu_time(b, image, cpu))
            over = best[0] / best[1] - 1
            print(f"({w}) {NAMES[w]:<28} {best[0]:>10.3f} {best[1]:>12.3f} {over:>8.1%}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
