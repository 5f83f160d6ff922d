#!/usr/bin/env bash
# Runs the platform suites' images on QEMU (TCG) and on nestemu with the
# same command line kvm-unit-tests' x86/run builds, and prints, per suite,
# the exit statuses and the checks whose verdicts differ. Needs
# qemu-system-x86_64; CI does not run this.
#
#   NESTEMU_DUMP_KERNELS=/tmp/k cargo test -p testsuites --test platform_qemu_cli
#   testsuites/scripts/compare-with-qemu.sh /tmp/k target/debug/nestemu
set -u
dir=${1:?directory of dumped images}
nestemu=${2:?path to the nestemu binary}
qemu=${QEMU:-qemu-system-x86_64}
flags=(--no-reboot -nodefaults -global kvm-pit.lost_tick_policy=discard
       -device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4
       -vnc none -serial stdio -device pci-testdev -machine accel=tcg
       -cpu max -m 64)
for img in "$dir"/*.bin; do
    name=$(basename "$img" .bin)
    # An image named NAME.smpN is a kernel for N vCPUs.
    smp=1
    [[ $name =~ \.smp([0-9]+)$ ]] && smp=${BASH_REMATCH[1]}
    timeout 90 "$qemu" "${flags[@]}" -smp "$smp" -kernel "$img" > "$dir/$name.qemu.out" 2> "$dir/$name.qemu.err"
    qs=$?
    timeout 90 "$nestemu" "${flags[@]}" -smp "$smp" -kernel "$img" > "$dir/$name.nestemu.out" 2> "$dir/$name.nestemu.err"
    ns=$?
    verdicts() { tr -d '\r' < "$1" | grep -E '^(ok|FAIL|SKIP) ' | sed -E 's/^FAIL ([^:]*):.*/FAIL \1/' | sort; }
    q_ok=$(grep -c '^ok ' "$dir/$name.qemu.out")
    n_ok=$(grep -c '^ok ' "$dir/$name.nestemu.out")
    echo "== $name (-smp $smp): qemu status $qs ($q_ok ok), nestemu status $ns ($n_ok ok)"
    diff <(verdicts "$dir/$name.qemu.out") <(verdicts "$dir/$name.nestemu.out") | grep '^[<>]' |
        sed -e 's/^</  qemu:   /' -e 's/^>/  nestemu:/'
    grep -h '^FAIL ' "$dir/$name.qemu.out" | tr -d '\r' | sed 's/^/  qemu detail: /'
done
