//! Criterion benches of measuring (issue 6), to be read as ratios between the
//! rows, never as absolute times: the demo's work on VT-x natively, as an L2
//! guest under EPT, and under shadow paging (the host cost of each way of
//! virtualizing paging), and the L2 run with every walk traced into a sink
//! (the cost of `--trace`). `cargo bench -p nestemu-benches --bench measure`.

use criterion::{criterion_group, criterion_main, Criterion};
use nestemu::cli::measure::MeasureOptions;
use nestemu::demo::work::Work;
use nestemu::demo::{config, program, Setup};
use nestemu::loader::multiboot;
use nestemu::trace::{Limit, Trace, TraceConfig};
use nestemu::{Machine, Stop};

/// 16,384 iterations over 8 MiB: past the TLBs, a second or less a run.
const WORK: Work = Work {
    data_bytes: 8 << 20,
    rounds: 2,
    per_round: 8192,
    switch_every: None,
};

fn run(setup: Setup, traced: bool) -> u64 {
    let cfg = config("intel", &MeasureOptions::default()).expect("the demo's configuration");
    let built = program(cfg.model.vendor, setup, WORK)
        .build()
        .expect("the demo builds");
    let mut m = Machine::new(cfg);
    if traced {
        let t = TraceConfig {
            limit: Limit::Bytes(u64::MAX),
            ..TraceConfig::default()
        };
        m.trace = Trace::new(&t, Box::new(std::io::sink()));
    }
    multiboot::boot(&mut m, &built.image, "bench", &[]).expect("the demo loads");
    assert_eq!(m.run(), Stop::DebugExit(0), "the work's checksum is right");
    m.stats.instructions
}

fn nested_work(c: &mut Criterion) {
    let mut g = c.benchmark_group("demo work, VT-x");
    g.sample_size(10);
    g.bench_function("native", |b| b.iter(|| run(Setup::Native, false)));
    g.bench_function("L2, EPT", |b| b.iter(|| run(Setup::L2Nested, false)));
    g.bench_function("L2, shadow paging", |b| {
        b.iter(|| run(Setup::L2Shadow, false))
    });
    g.bench_function("L2, EPT, every event traced", |b| {
        b.iter(|| run(Setup::L2Nested, true))
    });
    g.finish();
}

criterion_group!(benches, nested_work);
criterion_main!(benches);
