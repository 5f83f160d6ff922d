//! nestemu-difftest: checks nestemu's interpreter against the real CPU.
//!
//! Generated instruction sequences run in ring 3 of one guest image, on the
//! host CPU through `/dev/kvm` and on nestemu in-process, from identical state;
//! the final registers, flags (minus those the architecture leaves undefined),
//! exceptions and scratch memory are compared. See README.md.
#![deny(unsafe_code)]

pub mod compare;
pub mod emu;
pub mod flags;
pub mod gen;
pub mod image;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(unsafe_code)]
pub mod kvm;
pub mod layout;
pub mod minimize;
pub mod regress;
pub mod rng;
pub mod runner;
pub mod seq;

use runner::{Hardware, Mismatch, Stats};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The generator's seed.
    pub seed: u64,
    /// Sequences to compare.
    pub count: u64,
    /// Groups, used in rotation.
    pub groups: Vec<&'static str>,
    /// Items per sequence at most.
    pub max_items: usize,
    /// Sequences per KVM run.
    pub batch: usize,
}

impl Plan {
    /// Sequence `index` of the plan.
    pub fn sequence(&self, index: u64) -> seq::Sequence {
        let g = self.groups[(index % self.groups.len() as u64) as usize];
        gen::sequence(g, self.seed, index, self.max_items)
    }
}

/// Resolves a `--group` argument: a group, `int` (every integer group), or a
/// comma-separated list.
pub fn parse_groups(arg: &str) -> Result<Vec<&'static str>, String> {
    let names = gen::group_names();
    let mut v = Vec::new();
    for part in arg.split(',') {
        match part {
            "int" => v.extend_from_slice(gen::INT_GROUPS),
            "fpu" => v.extend_from_slice(gen::X87_GROUPS),
            "all" => v.extend(gen::group_names()),
            p => v.push(*names.iter().find(|n| **n == p).ok_or_else(|| {
                format!(
                    "unknown group '{p}' (groups: int, fpu, all, {})",
                    names.join(", ")
                )
            })?),
        }
    }
    Ok(v)
}

/// Runs a plan; `progress` is called after each batch with the counts so far.
pub fn run_plan(
    hw: &mut dyn Hardware,
    plan: &Plan,
    mut progress: impl FnMut(&Stats, u64),
) -> Result<(Stats, Vec<Mismatch>), String> {
    let mut stats = Stats::default();
    let mut mismatches = Vec::new();
    let mut next = 0u64;
    while next < plan.count {
        let n = (plan.count - next).min(plan.batch as u64);
        let seqs: Vec<_> = (next..next + n).map(|i| plan.sequence(i)).collect();
        mismatches.extend(runner::check(hw, &seqs, next, plan.batch, &mut stats)?);
        next += n;
        progress(&stats, next);
    }
    Ok((stats, mismatches))
}

/// A sequence of explicit instruction bytes (one item per instruction, all
/// under test), with registers zero except `sets` (`rax`..`r15`, `rflags`),
/// RSP in the scratch window, and zeroed windows.
pub fn explicit(code: &[u8], sets: &[(String, u64)]) -> Result<seq::Sequence, String> {
    let mut d = iced_x86::Decoder::with_ip(64, code, layout::CODE, iced_x86::DecoderOptions::AMD);
    let mut items = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            return Err(format!(
                "invalid instruction at byte {}",
                i.ip() - layout::CODE
            ));
        }
        if i.is_jcc_short_or_near() || i.is_jmp_short_or_near() || i.is_call_near() {
            return Err("branches are not supported in --code".into());
        }
        items.push(seq::Item {
            insns: vec![seq::Insn::new(i)],
        });
    }
    let mut init = seq::Init {
        gprs: [0; 16],
        rflags: layout::USER_RFLAGS,
        scratch: seq::zero_scratch(),
        fpu: seq::default_fpu(),
    };
    init.gprs[4] = layout::SCRATCH + 0x300;
    for (r, v) in sets {
        if r == "rflags" {
            init.rflags = *v;
            continue;
        }
        if r == "fcw" || r == "fsw" {
            let at = if r == "fcw" { 0 } else { 2 };
            init.fpu[at..at + 2].copy_from_slice(&(*v as u16).to_le_bytes());
            continue;
        }
        let n = compare::GPR_NAMES
            .iter()
            .position(|g| g == r)
            .ok_or_else(|| format!("unknown register {r}"))?;
        init.gprs[n] = *v;
    }
    Ok(seq::Sequence {
        group: "explicit",
        items,
        init,
    })
}

/// Runs one sequence on nestemu alone and returns its outcome.
pub fn emu_outcome(s: &seq::Sequence) -> EmuOutcome {
    let img = match image::build(std::slice::from_ref(s)) {
        Ok(i) => i,
        Err(e) => return EmuOutcome(Err(e)),
    };
    let r = emu::run(&img);
    if let Some((_, why)) = r.failed {
        return EmuOutcome(Err(why));
    }
    EmuOutcome(Ok(compare::Outcome::parse(image::output_record(&r.out, 0))))
}

/// nestemu's outcome of one sequence, or why it stopped.
#[derive(Clone, Debug)]
pub struct EmuOutcome(pub Result<compare::Outcome, String>);

impl core::fmt::Display for EmuOutcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Err(e) => write!(f, "stopped: {e}"),
            Ok(o) => {
                write!(
                    f,
                    "rflags {:#x}, exception {}",
                    o.rflags,
                    compare::show_exc(o.exception)
                )?;
                for (n, g) in o.gprs.iter().enumerate() {
                    if *g != 0 {
                        write!(f, ", {} {g:#x}", compare::GPR_NAMES[n])?;
                    }
                }
                Ok(())
            }
        }
    }
}
