//! The fuzzing loop: inputs from a seeded generator or mutated from the
//! corpus, each run under `catch_unwind` and a wall-clock watchdog; distinct
//! outcomes counted; failures saved as reproducer files.

use crate::mutate::mutate;
use crate::rng::Rng;
use crate::{Outcome, Target};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Heap one input may grow the process by, beyond the guest RAM it asked
/// for ([`Outcome::ram`]); checked where [`crate::alloc::Counting`] is the
/// global allocator.
pub const HEAP_LIMIT: usize = 512 << 20;

/// How long a run goes on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// This many iterations.
    Iterations(u64),
    /// Iterations until this much wall-clock time has passed.
    Seconds(f64),
}

/// The settings of a fuzzing run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The seed: the same seed gives the same inputs.
    pub seed: u64,
    /// Iterations or time.
    pub budget: Budget,
    /// Where reproducer files go.
    pub out: PathBuf,
    /// Wall-clock bound on one iteration before the watchdog declares a
    /// hang (generous: every target also bounds instructions).
    pub hang: Duration,
    /// Print a progress line this often (None: never).
    pub progress: Option<Duration>,
}

impl Config {
    /// `iters` iterations from `seed`, reproducers in the temp directory.
    pub fn iterations(seed: u64, iters: u64) -> Self {
        Self {
            seed,
            budget: Budget::Iterations(iters),
            out: std::env::temp_dir().join("nestemu-fuzz"),
            hang: Duration::from_secs(60),
            progress: None,
        }
    }
}

/// Why an input failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// The emulator panicked.
    Panic,
    /// The outcome is outside the architecturally defined set.
    Undefined,
    /// The input grew the heap beyond [`HEAP_LIMIT`] plus its guest RAM.
    Memory,
}

/// One failing input.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Panic or undefined outcome.
    pub kind: FailureKind,
    /// The panic message or the violation.
    pub message: String,
    /// The iteration that found it.
    pub iteration: u64,
    /// The input.
    pub input: Vec<u8>,
    /// The reproducer file, if it could be written.
    pub saved: Option<PathBuf>,
}

/// What a run of one target found.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The target.
    pub target: &'static str,
    /// The seed.
    pub seed: u64,
    /// Iterations run.
    pub iterations: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Each distinct outcome and how often it happened.
    pub outcomes: BTreeMap<String, u64>,
    /// Unimplemented instructions and paths reached, with counts.
    pub unimplemented: BTreeMap<String, u64>,
    /// Failures, first of each distinct message.
    pub failures: Vec<Failure>,
    /// Failing iterations in all (including repeats of a message).
    pub failing_iterations: u64,
    /// Inputs in the corpus at the end.
    pub corpus: usize,
}

impl Summary {
    /// A multi-line report.
    pub fn render(&self) -> String {
        let mut s = format!(
            "target {}: {} iterations in {:.1} s (seed {}), {} distinct outcomes, corpus {}, {} failures\n",
            self.target,
            self.iterations,
            self.elapsed.as_secs_f64(),
            self.seed,
            self.outcomes.len(),
            self.corpus,
            self.failing_iterations
        );
        for (label, n) in &self.outcomes {
            s.push_str(&format!("  {n:>9}  {label}\n"));
        }
        for (what, n) in &self.unimplemented {
            s.push_str(&format!("  unimplemented {n:>9}  {what}\n"));
        }
        for f in &self.failures {
            s.push_str(&format!(
                "  FAILURE ({:?}) at iteration {}: {}\n    reproducer: {}\n",
                f.kind,
                f.iteration,
                f.message,
                f.saved
                    .as_ref()
                    .map_or("(not saved)".into(), |p| p.display().to_string())
            ));
        }
        s
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that, on threads running an input, records
/// the message instead of printing it; elsewhere the previous hook runs.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".into());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAPTURED.with(|c| *c.borrow_mut() = Some(format!("panic: {msg}{at}")));
            } else {
                prev(info);
            }
        }));
    });
}

/// Runs one input, turning a panic into `Err(message)`.
pub fn run_caught(target: &dyn Target, input: &[u8]) -> Result<crate::Verdict, String> {
    install_hook();
    CAPTURING.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| target.run(input)));
    CAPTURING.with(|c| c.set(false));
    r.map_err(|_| {
        CAPTURED
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

/// Runs one input as [`run_caught`] does, and turns heap growth beyond
/// [`HEAP_LIMIT`] plus the input's guest RAM into a violation.
pub fn run_checked(target: &dyn Target, input: &[u8]) -> Result<crate::Verdict, String> {
    let heap = crate::alloc::begin();
    Ok(match run_caught(target, input)? {
        Ok(o) => check_heap(heap, &o).map(|()| o),
        Err(v) => Err(v),
    })
}

/// What the watchdog watches: one entry per thread running an input.
struct Watch {
    id: u64,
    started: Instant,
    bound: Duration,
    target: &'static str,
    seed: u64,
    iteration: u64,
    input: Vec<u8>,
    out: PathBuf,
}

static WATCHES: Mutex<Vec<Watch>> = Mutex::new(Vec::new());

/// Starts (once) the watchdog thread: if one iteration runs past its bound
/// it saves the input, says so on stderr and aborts the process, since a
/// thread stuck in the emulator cannot be stopped any other way.
fn start_watchdog() {
    static DOG: Once = Once::new();
    DOG.call_once(|| {
        std::thread::Builder::new()
            .name("nestemu-fuzz watchdog".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(250));
                let watches = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(w) = watches.iter().find(|w| w.started.elapsed() > w.bound) {
                    let path = save(&w.out, w.target, w.seed, w.iteration, "hang", &w.input);
                    eprintln!(
                        "nestemu-fuzz: HANG: target {} seed {} iteration {} ran for more than {:?}; input saved to {}",
                        w.target,
                        w.seed,
                        w.iteration,
                        w.bound,
                        path.map_or("(could not save)".into(), |p| p.display().to_string())
                    );
                    std::process::abort();
                }
            })
            .expect("the watchdog thread starts");
    });
}

fn watch_begin(w: Watch) {
    let mut ws = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
    ws.retain(|x| x.id != w.id);
    ws.push(w);
}

fn watch_end(id: u64) {
    WATCHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| x.id != id);
}

/// Writes a reproducer file; returns its path.
fn save(
    out: &Path,
    target: &str,
    seed: u64,
    iteration: u64,
    kind: &str,
    input: &[u8],
) -> Option<PathBuf> {
    std::fs::create_dir_all(out).ok()?;
    let p = out.join(format!("{target}-seed{seed}-iter{iteration}-{kind}.bin"));
    std::fs::write(&p, input).ok()?;
    Some(p)
}

/// Distinguishes runs for the watchdog.
fn next_watch_id() -> u64 {
    static NEXT: Mutex<u64> = Mutex::new(0);
    let mut n = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    *n
}

/// The per-target seed: the run's seed mixed with the target name, so
/// `all` gives each target its own stream.
fn target_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Fuzzes `target` as `cfg` says.
pub fn fuzz(target: &dyn Target, cfg: &Config) -> Summary {
    start_watchdog();
    let id = next_watch_id();
    let mut rng = Rng::new(target_seed(cfg.seed, target.name()));
    let max_len = target.max_len();
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut s = Summary {
        target: target.name(),
        seed: cfg.seed,
        iterations: 0,
        elapsed: Duration::ZERO,
        outcomes: BTreeMap::new(),
        unimplemented: BTreeMap::new(),
        failures: Vec::new(),
        failing_iterations: 0,
        corpus: 0,
    };
    let start = Instant::now();
    let mut last_progress = start;
    loop {
        match cfg.budget {
            Budget::Iterations(n) if s.iterations >= n => break,
            Budget::Seconds(t) if start.elapsed().as_secs_f64() >= t => break,
            _ => {}
        }
        let input = if corpus.is_empty() || rng.chance(1, 3) {
            let n = rng.range(1, max_len as u64) as usize;
            rng.bytes(n)
        } else {
            let a = rng.below(corpus.len() as u64) as usize;
            let b = rng.below(corpus.len() as u64) as usize;
            mutate(&mut rng, &corpus[a], &corpus[b], max_len)
        };
        let iteration = s.iterations;
        watch_begin(Watch {
            id,
            started: Instant::now(),
            bound: cfg.hang,
            target: target.name(),
            seed: cfg.seed,
            iteration,
            input: input.clone(),
            out: cfg.out.clone(),
        });
        let result = run_checked(target, &input);
        watch_end(id);
        s.iterations += 1;
        let failure = match result {
            Ok(Ok(o)) => {
                record(&mut s, &o);
                if seen.insert((o.label.clone(), o.signal)) {
                    if corpus.len() < 2048 {
                        corpus.push(input);
                    } else {
                        let k = rng.below(corpus.len() as u64) as usize;
                        corpus[k] = input;
                    }
                }
                None
            }
            Ok(Err(violation)) if violation.starts_with(HEAP_TAG) => {
                Some((FailureKind::Memory, violation, input))
            }
            Ok(Err(violation)) => Some((FailureKind::Undefined, violation, input)),
            Err(panic) => Some((FailureKind::Panic, panic, input)),
        };
        if let Some((kind, message, input)) = failure {
            s.failing_iterations += 1;
            if failed.insert(crate::normalize(&message)) {
                let tag = match kind {
                    FailureKind::Panic => "panic",
                    FailureKind::Undefined => "undefined",
                    FailureKind::Memory => "memory",
                };
                let saved = save(&cfg.out, target.name(), cfg.seed, iteration, tag, &input);
                s.failures.push(Failure {
                    kind,
                    message,
                    iteration,
                    input,
                    saved,
                });
            }
        }
        if let Some(every) = cfg.progress {
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                eprintln!(
                    "nestemu-fuzz: {}: {} iterations, {:.0} s, {} outcomes, corpus {}, {} failures",
                    target.name(),
                    s.iterations,
                    start.elapsed().as_secs_f64(),
                    s.outcomes.len(),
                    corpus.len(),
                    s.failing_iterations
                );
            }
        }
    }
    s.elapsed = start.elapsed();
    s.corpus = corpus.len();
    s
}

/// How a heap failure message begins.
const HEAP_TAG: &str = "heap grew by";

/// Whether the run since [`crate::alloc::begin`] (live heap `base`) stayed
/// within [`HEAP_LIMIT`] plus the guest RAM of `o`.
fn check_heap(base: usize, o: &Outcome) -> Result<(), String> {
    if !crate::alloc::installed() {
        return Ok(());
    }
    let grew = crate::alloc::peak().saturating_sub(base);
    let allowed = HEAP_LIMIT.saturating_add(usize::try_from(o.ram).unwrap_or(usize::MAX));
    if grew > allowed {
        return Err(format!(
            "{HEAP_TAG} {} MiB, more than the {} MiB allowed ({})",
            grew >> 20,
            allowed >> 20,
            o.label
        ));
    }
    Ok(())
}

fn record(s: &mut Summary, o: &Outcome) {
    *s.outcomes.entry(o.label.clone()).or_insert(0) += 1;
    if let Some(u) = &o.unimplemented {
        *s.unimplemented.entry(u.clone()).or_insert(0) += 1;
    }
}

/// Peak resident memory of this process in KiB (VmHWM), where the host
/// reports it (Linux).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, Verdict};

    struct Toy;
    impl Target for Toy {
        fn name(&self) -> &'static str {
            "toy"
        }
        fn max_len(&self) -> usize {
            8
        }
        fn run(&self, input: &[u8]) -> Verdict {
            match input.first() {
                Some(0xff) => panic!("byte ff"),
                Some(0xfe) => Err("fe is undefined".into()),
                Some(b) => Ok(Outcome::new(format!("class {}", b % 4))),
                None => Ok(Outcome::new("empty")),
            }
        }
    }

    #[test]
    fn catches_panics_and_violations_deterministically() {
        let mut cfg = Config::iterations(1, 3000);
        cfg.out =
            std::env::temp_dir().join(format!("nestemu-fuzz-selftest-{}", std::process::id()));
        let a = fuzz(&Toy, &cfg);
        let b = fuzz(&Toy, &cfg);
        assert_eq!(a.outcomes, b.outcomes);
        assert_eq!(a.failing_iterations, b.failing_iterations);
        let kinds: BTreeSet<FailureKind> = a.failures.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 2, "{}", a.render());
        let panic = a
            .failures
            .iter()
            .find(|f| f.kind == FailureKind::Panic)
            .unwrap();
        assert!(panic.message.contains("byte ff"));
        assert_eq!(
            std::fs::read(panic.saved.as_ref().unwrap()).unwrap()[0],
            0xff
        );
        let _ = std::fs::remove_dir_all(&cfg.out);
    }
}
