//! `nestemu-difftest`: compares nestemu with the host CPU on generated
//! instruction sequences. See the crate's README.

use difftest::runner::{open_hardware, GroupStats, Stats};
use difftest::{gen, minimize, Plan};
use std::process::ExitCode;

const USAGE: &str = "\
usage: nestemu-difftest [--seed S] [--count N] [--group G] [--max-items N]
                        [--batch N] [--show N] [--no-minimize] [--index K]
                        [--list]

Generates instruction sequences from a seed and runs each on the host CPU
(through /dev/kvm) and on nestemu, comparing registers, flags (minus the
architecturally undefined ones), exceptions and scratch memory.

  --seed S        generator seed (default 1; decimal or 0x hex)
  --count N       sequences to compare (default 10000)
  --group G       group, comma-separated groups, or 'int' for every integer
                  group in rotation (default int); --list shows them
  --max-items N   items per sequence at most (default 6)
  --batch N       sequences per KVM run (default 2000)
  --show N        report at most N mismatches in full (default 10)
  --no-minimize   report mismatches as generated, not minimized
  --index K       run only sequence K of the plan and print it
  --code HEX      run these instruction bytes as one sequence on both machines
                  and print both outcomes; --set REG=V (rax..r15, rflags) sets
                  its initial state (registers 0, RSP in the scratch window)
  --list          list the groups and their instruction forms

Exit status: 0 no mismatch (or no /dev/kvm: a notice is printed), 1 mismatches,
2 bad usage, 3 the oracle failed.";

fn num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("not a number: {s}"))
}

struct Args {
    plan: Plan,
    show: usize,
    minimize: bool,
    index: Option<u64>,
    list: bool,
    code: Option<Vec<u8>>,
    sets: Vec<(String, u64)>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        plan: Plan {
            seed: 1,
            count: 10_000,
            groups: gen::INT_GROUPS.to_vec(),
            max_items: gen::DEFAULT_MAX_ITEMS,
            batch: 2000,
        },
        show: 10,
        minimize: true,
        index: None,
        list: false,
        code: None,
        sets: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => a.plan.seed = num(&val()?)?,
            "--count" => a.plan.count = num(&val()?)?,
            "--group" => a.plan.groups = difftest::parse_groups(&val()?)?,
            "--max-items" => a.plan.max_items = num(&val()?)?.max(1) as usize,
            "--batch" => a.plan.batch = num(&val()?)?.max(1) as usize,
            "--show" => a.show = num(&val()?)? as usize,
            "--no-minimize" => a.minimize = false,
            "--index" => a.index = Some(num(&val()?)?),
            "--list" => a.list = true,
            "--code" => {
                let h: String = val()?.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = (0..h.len() / 2)
                    .map(|k| u8::from_str_radix(&h[2 * k..2 * k + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| format!("--code: not hex: {h}"))?;
                a.code = Some(bytes);
            }
            "--set" => {
                let v = val()?;
                let (r, x) = v.split_once('=').ok_or("--set needs REG=VALUE")?;
                a.sets.push((r.to_string(), num(x)?));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (see --help)")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nestemu-difftest: {e}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for (g, n) in gen::form_counts() {
            println!("{g:<8} {n} table forms");
        }
        println!("mixed    items from every integer group");
        return ExitCode::SUCCESS;
    }
    if let Some(k) = args.index {
        let s = args.plan.sequence(k);
        println!("sequence {k} (group {}):", s.group);
        print!("{}", s.listing(difftest::layout::CODE));
        print!("{}", minimize::show_init(&s));
    }
    let mut hw = match open_hardware() {
        Ok(h) => h,
        Err(e) => {
            println!("nestemu-difftest: cannot run, no hardware oracle: {e}");
            return ExitCode::SUCCESS;
        }
    };
    let mut plan = args.plan.clone();
    if let Some(code) = &args.code {
        let s = match difftest::explicit(code, &args.sets) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("nestemu-difftest: {e}");
                return ExitCode::from(2);
            }
        };
        print!("{}", s.listing(difftest::layout::CODE));
        print!("{}", minimize::show_init(&s));
        return match difftest::runner::check_one(hw.as_mut(), &s) {
            Ok(None) => {
                let o = difftest::emu_outcome(&s);
                println!("the machines agree: {o}");
                ExitCode::SUCCESS
            }
            Ok(Some(m)) => {
                print!("{}", minimize::report(&m));
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("nestemu-difftest: {e}");
                ExitCode::from(3)
            }
        };
    }
    if let Some(k) = args.index {
        let s = plan.sequence(k);
        return match difftest::runner::check_one(hw.as_mut(), &s) {
            Ok(None) => {
                println!("the machines agree");
                ExitCode::SUCCESS
            }
            Ok(Some(m)) => {
                print!("{}", minimize::report(&m));
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("nestemu-difftest: {e}");
                ExitCode::from(3)
            }
        };
    }
    plan.batch = plan.batch.min(difftest::layout::MAX_BATCH);
    let start = std::time::Instant::now();
    let result = difftest::run_plan(hw.as_mut(), &plan, |s, done| {
        let t = s.total();
        eprint!(
            "\r{done}/{} sequences, {} mismatches, {:.0?}   ",
            plan.count,
            t.mismatches,
            start.elapsed()
        );
    });
    eprintln!();
    let (stats, mismatches) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nestemu-difftest: {e}");
            return ExitCode::from(3);
        }
    };
    print_stats(&stats, plan.seed, start.elapsed());
    for m in mismatches.iter().take(args.show) {
        let m = if args.minimize {
            minimize::minimize(hw.as_mut(), m)
        } else {
            m.clone()
        };
        println!();
        print!("{}", minimize::report(&m));
    }
    if mismatches.is_empty() && stats.stray_writes.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!(
            "\n{} mismatching sequences (first indices: {:?})",
            mismatches.len(),
            mismatches
                .iter()
                .take(20)
                .map(|m| m.index)
                .collect::<Vec<_>>()
        );
        ExitCode::from(1)
    }
}

fn print_stats(stats: &Stats, seed: u64, took: std::time::Duration) {
    println!("seed {seed:#x}, {took:.1?}");
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>10}  exceptions (hardware)",
        "group", "sequences", "instructions", "under test", "mismatches"
    );
    let row = |name: &str, g: &GroupStats| {
        let exc: Vec<String> = g
            .exceptions
            .iter()
            .map(|(v, n)| format!("{}:{n}", difftest::compare::vector_name(*v)))
            .collect();
        println!(
            "{name:<8} {:>10} {:>12} {:>12} {:>10}  {}",
            g.sequences,
            g.instructions,
            g.tested,
            g.mismatches,
            exc.join(" ")
        );
    };
    for (name, g) in &stats.groups {
        row(name, g);
    }
    let t = stats.total();
    row("total", &t);
    for (a, n) in &t.artifacts {
        println!("masked oracle artifact: {} ({n} sequences)", a.name());
    }
    for w in &stats.stray_writes {
        println!("MISMATCH: {w}");
    }
}
