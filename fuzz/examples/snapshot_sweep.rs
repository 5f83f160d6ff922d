//! Systematic damage to snapshots: every value of each base snapshot's
//! machine state (the first item of each array) replaced in turn by
//! a few boundary values, each file loaded and run as the `snapshot` target
//! does. Prints every panic and violation; exit status 1 if there was one.
//!
//! ```text
//! cargo run --profile fuzz -p nestemu-fuzz --example snapshot_sweep [BASE-INDEX...]
//! ```

use nestemu_fuzz::runner::run_caught;
use nestemu_fuzz::targets::snapshot::{load, paths, Parts, Snapshot};
use nestemu_fuzz::{Target, Verdict};
use serde_json::Value;

/// The values each place gets.
fn replacements(old: &Value) -> Vec<Value> {
    match old {
        Value::Number(_) => [0u64, 1, 0xff, 0xffff, 0x8000_0000, u64::MAX >> 1, u64::MAX]
            .into_iter()
            .map(Value::from)
            .collect(),
        Value::Bool(b) => vec![Value::Bool(!b)],
        Value::Array(items) if !items.is_empty() => {
            let mut longer = items.clone();
            longer.push(items[0].clone());
            vec![Value::Array(Vec::new()), Value::Array(longer)]
        }
        _ => Vec::new(),
    }
}

/// One file through the target's loader, as a target so panics are caught.
struct One(Vec<u8>);

impl Target for One {
    fn name(&self) -> &'static str {
        "snapshot-sweep"
    }
    fn max_len(&self) -> usize {
        0
    }
    fn run(&self, _: &[u8]) -> Verdict {
        load("sweep", &self.0)
    }
}

fn main() {
    let target = Snapshot::new();
    let which: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut bad = 0;
    for (k, base) in target.bases.iter().enumerate() {
        if !which.is_empty() && !which.contains(&k) {
            continue;
        }
        let parts = Parts::split(base);
        let state: Value = serde_json::from_slice(&parts.state).expect("a base parses");
        let mut all = Vec::new();
        paths(&state, String::new(), &mut all);
        // The first item of each array stands for the others.
        all.retain(|p| {
            p.split('/')
                .all(|s| s == "0" || s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()))
        });
        eprintln!("base {k}: {} places", all.len());
        for (i, at) in all.iter().enumerate() {
            if i % 50 == 0 {
                eprintln!("base {k}: {i} of {} places", all.len());
            }
            let Some(old) = state.pointer(at) else {
                continue;
            };
            for new in replacements(old) {
                let mut v = state.clone();
                if let Some(slot) = v.pointer_mut(at) {
                    *slot = new.clone();
                }
                let mut p = parts.clone();
                p.state = serde_json::to_vec(&v).expect("JSON serializes");
                let n = p.pages.len() as u64;
                let one = One(p.join(n));
                let verdict = run_caught(&one, &[]);
                let problem = match verdict {
                    Ok(Ok(_)) => None,
                    Ok(Err(v)) => Some(format!("UNDEFINED: {v}")),
                    Err(p) => Some(format!("PANIC: {p}")),
                };
                if let Some(p) = problem {
                    bad += 1;
                    println!("base {k} {at} = {new}: {p}");
                }
            }
        }
    }
    std::process::exit(i32::from(bad > 0));
}
