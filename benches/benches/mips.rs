//! The MIPS benchmark: guest instructions per host second for an integer loop.
//! `cargo bench -p nestemu-benches --bench mips` (set NESTEMU_MIPS_ITERS to
//! change the length).

fn main() {
    let iters: u64 = std::env::var("NESTEMU_MIPS_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    // Skip when cargo runs benches in test mode (`cargo test --benches`).
    if std::env::args().any(|a| a == "--test") {
        println!("mips: skipped in test mode");
        return;
    }
    let r = nestemu_benches::run(
        &nestemu_benches::integer_loop(iters),
        nestemu_benches::config(),
    );
    assert!(nestemu_benches::ended(&r.stop), "{:?}", r.stop);
    println!(
        "integer loop: {} guest instructions in {:.3} s = {:.1} MIPS",
        r.instructions,
        r.seconds,
        r.mips()
    );
}
