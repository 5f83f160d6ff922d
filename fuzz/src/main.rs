//! The `nestemu-fuzz` binary.
//!
//! ```text
//! nestemu-fuzz <target|all> [--seed N] [--iters N | --seconds S] [--out DIR] [--hang-secs S]
//! nestemu-fuzz replay <target> FILE...
//! nestemu-fuzz list
//! ```
//!
//! Exit status: 0 no failure, 1 a failure was found (reproducers in
//! `--out`), 2 bad usage. A hang aborts the process after saving its input.

use nestemu_fuzz::runner::{fuzz, peak_rss_kib, run_checked, Budget, Config};

#[global_allocator]
static ALLOC: nestemu_fuzz::alloc::Counting = nestemu_fuzz::alloc::Counting;
use nestemu_fuzz::targets::{make, NAMES};
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: nestemu-fuzz <target|all> [--seed N] [--iters N | --seconds S] [--out DIR] [--hang-secs S]
       nestemu-fuzz replay <target> FILE...
       nestemu-fuzz list
targets: loader cli paging insn vmcs vmcb snapshot";

fn number(flag: &str, v: Option<&String>) -> Result<f64, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("{flag} needs a non-negative number, got '{v}'"))
}

fn parse(args: &[String]) -> Result<(Vec<&'static str>, Config), String> {
    let which = args.first().ok_or("no target given")?;
    let names: Vec<&'static str> = if which == "all" {
        NAMES.to_vec()
    } else {
        vec![NAMES
            .iter()
            .copied()
            .find(|n| n == which)
            .ok_or_else(|| format!("unknown target '{which}'"))?]
    };
    let mut cfg = Config::iterations(1, 1000);
    cfg.progress = Some(Duration::from_secs(60));
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => cfg.seed = number("--seed", it.next())? as u64,
            "--iters" => cfg.budget = Budget::Iterations(number("--iters", it.next())? as u64),
            "--seconds" => cfg.budget = Budget::Seconds(number("--seconds", it.next())?),
            "--hang-secs" => {
                cfg.hang = Duration::from_secs_f64(number("--hang-secs", it.next())?.max(1.0))
            }
            "--out" => {
                cfg.out = PathBuf::from(it.next().ok_or("--out needs a directory")?);
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok((names, cfg))
}

fn replay(args: &[String]) -> i32 {
    let Some(target) = args.first().and_then(|n| make(n)) else {
        eprintln!("nestemu-fuzz: replay needs a target and files\n{USAGE}");
        return 2;
    };
    let mut status = 0;
    for path in &args[1..] {
        let input = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("nestemu-fuzz: cannot read '{path}': {e}");
                return 2;
            }
        };
        match run_checked(target.as_ref(), &input) {
            Ok(Ok(o)) => println!("{path}: {}", o.label),
            Ok(Err(v)) => {
                println!("{path}: UNDEFINED: {v}");
                status = 1;
            }
            Err(p) => {
                println!("{path}: PANIC: {p}");
                status = 1;
            }
        }
    }
    status
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("replay") => std::process::exit(replay(&args[1..])),
        Some("list") => {
            for n in NAMES {
                println!("{n}");
            }
            return;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        _ => {}
    }
    let (names, cfg) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("nestemu-fuzz: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut failed = false;
    for name in names {
        let target = make(name).expect("every listed target builds");
        let s = fuzz(target.as_ref(), &cfg);
        print!("{}", s.render());
        failed |= s.failing_iterations > 0;
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory: {} MiB", kib / 1024);
    }
    std::process::exit(if failed { 1 } else { 0 });
}
