#!/usr/bin/env python3
"""What the statistics and the cost model cost the host.

Builds the nestemu binary twice, as shipped and with the measuring-only
feature `uncounted` (no counters, no modelled cycles: the clock advances one
cycle per instruction), writes the images of workloads (a)-(f), and compares
the two builds' host CPU time (user + system, `getrusage` of the child) on
each workload.

Code layout alone moves these workloads' time by 10% and more: two builds
differing by one line can land a hot loop across a fetch boundary, and the
figure then measures the layout, not the change (Mytkowicz et al., "Producing
wrong data without doing anything obviously wrong!", ASPLOS 2009). So each
build is linked again under LAYOUTS random orders of its functions (the
linker's `--shuffle-sections`, same object code), every layout of both builds
runs RUNS times, alternated, each layout keeps its best time, and the
overhead compares the medians over the layouts: counted / uncounted - 1. The
spread (fastest and slowest layout) is printed beside it. With `--layouts 0`,
or when the linker cannot shuffle, each build runs in its one default
layout.

With `--instructions`, each workload also runs once per build under
callgrind (valgrind), whose host instruction counts are exact and
repeatable: the overhead in instructions.

    python3 benches/overhead.py [--runs RUNS] [--layouts LAYOUTS]
                                [--instructions] [WORKLOADS...]

RUNS defaults to 3, LAYOUTS to 8, WORKLOADS to a b c d e f. Run it from the
repository's root. The sizes are the ones README's figures use.
"""

import argparse
import os
import resource
import shlex
import shutil
import statistics
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


def build(tmp, name, features, layouts):
    """Builds the nestemu binary with `features` and links it into `tmp`
    under `layouts` shuffled function orders (seeds 1..layouts), or once in
    the default order. Returns the binaries' paths."""
    target = os.path.join("target", "overhead-" + name)
    cmd = ["cargo", "rustc", "--release", "-p", "nestemu", "--bin", "nestemu",
           "--target-dir", target]
    if features:
        cmd += ["--features", features]
    # Keep the object files and print the link command, to link again.
    cmd += ["--", "-C", "save-temps", "--print", "link-args"]
    # The link command is printed only when the binary is built: make
    # cargo build it again even when nothing changed since the last run.
    os.utime(os.path.join("emu", "src", "main.rs"))
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    default = os.path.join(tmp, f"nestemu-{name}")
    shutil.copy(os.path.join(target, "release", "nestemu"), default)
    if layouts == 0:
        return [default]
    lines = [l for l in out.splitlines() if "-o" in l and ("\"cc\"" in l or " cc " in l)]
    if not lines:
        print("overhead: no link command printed; default layout only", file=sys.stderr)
        return [default]
    toks = shlex.split(lines[-1])
    env = dict(os.environ)
    while "=" in toks[0] and not toks[0].startswith("-"):
        k, v = toks.pop(0).split("=", 1)
        env[k] = v
    if not any(t == "-fuse-ld=lld" for t in toks):
        sysroot = subprocess.run(["rustc", "--print", "sysroot"], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout.strip()
        host = [l.split()[1] for l in subprocess.run(
            ["rustc", "-vV"], check=True, stdout=subprocess.PIPE, text=True
        ).stdout.splitlines() if l.startswith("host:")][0]
        toks += ["-fuse-ld=lld", "-B" + os.path.join(sysroot, "lib", "rustlib", host,
                                                     "bin", "gcc-ld")]
    out_at = toks.index("-o") + 1
    bins = []
    for seed in range(1, layouts + 1):
        dst = os.path.join(tmp, f"nestemu-{name}-{seed}")
        link = list(toks)
        link[out_at] = dst
        link.append(f"-Wl,--shuffle-sections=*={seed}")
        if subprocess.run(link, env=env).returncode != 0:
            print("overhead: the linker cannot shuffle sections; default layout only",
                  file=sys.stderr)
            return [default]
        bins.append(dst)
    return bins


def command(binary, image, cpu):
    return [binary, "run", "--kernel", image, "--mem", "256", "--cpu", cpu,
            "--max-insns", "10000000000"]


def cpu_time(binary, image, cpu):
    """Host CPU time (s) of one run of `image`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command(binary, image, cpu), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def instructions(binary, image, cpu, tmp):
    """Host instructions of one run of `image`, counted by callgrind."""
    out = os.path.join(tmp, "callgrind.out")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                   + command(binary, image, cpu), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layouts", type=int, default=8)
    ap.add_argument("--instructions", action="store_true")
    ap.add_argument("workloads", nargs="*", default=list(SIZES))
    args = ap.parse_args()
    for w in args.workloads:
        if w not in SIZES:
            sys.exit(f"unknown workload {w}: one of {' '.join(SIZES)}")
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind (Debian package valgrind)")
    tmp = tempfile.mkdtemp(prefix="nestemu-overhead-")
    try:
        uncounted = build(tmp, "uncounted", "uncounted", args.layouts)
        counted = build(tmp, "counted", "", args.layouts)
        n = min(len(counted), len(uncounted))
        counted, uncounted = counted[:n], uncounted[:n]
        print(f"{n} layout(s) per build, best of {args.runs} runs each, alternated")
        head = (f"{'workload':<32} {'counted s':>10} {'uncounted s':>12} {'overhead':>9}"
                f"  {'counted range':>15}  {'uncounted range':>15}")
        if args.instructions:
            head += f"  {'instructions':>12}"
        print(head)
        for w in args.workloads:
            d = os.path.join(tmp, w)
            subprocess.run(
                ["cargo", "run", "-q", "--release", "-p", "nestemu-benches",
                 "--example", "images", "--", w, str(SIZES[w]), d],
                check=True, stdout=subprocess.DEVNULL)
            image = os.path.join(d, "image.bin")
            cpu = "amd" if w in AMD else "intel"
            best = {b: float("inf") for b in counted + uncounted}
            for _ in range(args.runs):
                for c, u in zip(counted, uncounted):
                    for b in (c, u):
                        best[b] = min(best[b], cpu_time(b, image, cpu))
            tc = [best[b] for b in counted]
            tu = [best[b] for b in uncounted]
            mc, mu = statistics.median(tc), statistics.median(tu)
            line = (f"({w}) {NAMES[w]:<28} {mc:>10.3f} {mu:>12.3f} {mc / mu - 1:>8.1%}"
                    f"  {min(tc):>7.3f}-{max(tc):<7.3f}  {min(tu):>7.3f}-{max(tu):<7.3f}")
            if args.instructions:
                ic = instructions(counted[0], image, cpu, tmp)
                iu = instructions(uncounted[0], image, cpu, tmp)
                line += f"  {ic / iu - 1:>11.1%}"
            print(line, flush=True)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
