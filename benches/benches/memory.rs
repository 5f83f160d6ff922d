//! Host memory of a large guest that touches little of its RAM (issue 7):
//! a 4-GiB guest writes every page of 100 MiB; the process's peak resident
//! set must stay under 200 MiB. `cargo bench -p nestemu-benches --bench
//! memory` (Linux: peak RSS from /proc/self/status).

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        println!("memory: skipped in test mode");
        return;
    }
    let before = peak_rss_kib();
    let mut cfg = nestemu_benches::config();
    cfg.mem_bytes = 4 << 30;
    let touched = 100u64 << 20;
    let r = nestemu_benches::run(
        &nestemu_benches::workloads::touch(0x1000_0000, touched),
        cfg,
    );
    assert!(nestemu_benches::ended(&r.stop), "{:?}", r.stop);
    match (before, peak_rss_kib()) {
        (Some(b), Some(p)) => println!(
            "4-GiB guest touching {} MiB: peak RSS {} MiB (before the machine: {} MiB) in {:.2} s",
            touched >> 20,
            p >> 10,
            b >> 10,
            r.seconds
        ),
        _ => println!("memory: peak RSS is read from /proc/self/status (Linux only)"),
    }
}
