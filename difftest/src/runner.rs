//! Running batches on both machines and collecting mismatches and counts.

use crate::compare::{self, Difference, Outcome};
use crate::emu::{self, RunOutput};
use crate::image::{self, Image};
use crate::layout;
use crate::seq::Sequence;
use nestemu::cpu::cpuid::Vendor;
use std::collections::BTreeMap;

/// The hardware side: something that runs an image on the real CPU.
pub trait Hardware {
    /// Runs the image.
    fn run(&mut self, img: &Image) -> Result<RunOutput, String>;
    /// Guest RAM after the last run.
    fn memory(&mut self) -> &[u8];
    /// The host CPU's vendor: nestemu runs the matching preset, so where
    /// Intel and AMD legitimately differ (the x87 last-opcode and FXSAVE
    /// pointer rules, FCOMI's C1, ...) the comparison is with the vendor's
    /// rule.
    fn vendor(&self) -> Vendor;
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
impl Hardware for crate::kvm::Oracle {
    fn run(&mut self, img: &Image) -> Result<RunOutput, String> {
        crate::kvm::Oracle::run(self, img)
    }
    fn memory(&mut self) -> &[u8] {
        crate::kvm::Oracle::memory(self)
    }
    fn vendor(&self) -> Vendor {
        self.vendor
    }
}

/// Opens the hardware oracle, or says why there is none.
pub fn open_hardware() -> Result<Box<dyn Hardware>, String> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        if !std::path::Path::new("/dev/kvm").exists() {
            return Err("/dev/kvm does not exist".into());
        }
        let o = crate::kvm::Oracle::open()?;
        Ok(Box::new(o))
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        Err("the hardware oracle needs KVM on Linux x86-64".into())
    }
}

/// A sequence on which the machines disagree.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The sequence's number in the run.
    pub index: u64,
    /// The sequence.
    pub seq: Sequence,
    /// What differs (empty if a machine stopped).
    pub diffs: Vec<Difference>,
    /// The hardware's outcome, if it got that far.
    pub hw: Option<Outcome>,
    /// nestemu's outcome, if it got that far.
    pub emu: Option<Outcome>,
    /// Why a machine stopped in this sequence, if one did.
    pub stopped: Option<String>,
    /// Where the sequence's code was.
    pub code_at: u64,
}

/// Counts for one group.
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    /// Sequences compared.
    pub sequences: u64,
    /// Instructions in them.
    pub instructions: u64,
    /// Instructions under test (not set-up).
    pub tested: u64,
    /// Sequences that ended in an exception on hardware, by vector.
    pub exceptions: BTreeMap<u8, u64>,
    /// Sequences that mismatched.
    pub mismatches: u64,
    /// Oracle artifacts masked, by kind.
    pub artifacts: BTreeMap<compare::Artifact, u64>,
}

/// Counts per group.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// By group name.
    pub groups: BTreeMap<&'static str, GroupStats>,
    /// Memory outside the windows that differed after a batch (each a
    /// mismatch no sequence was blamed for).
    pub stray_writes: Vec<String>,
}

impl Stats {
    /// The totals over all groups.
    pub fn total(&self) -> GroupStats {
        let mut t = GroupStats::default();
        for g in self.groups.values() {
            t.sequences += g.sequences;
            t.instructions += g.instructions;
            t.tested += g.tested;
            t.mismatches += g.mismatches;
            for (v, n) in &g.exceptions {
                *t.exceptions.entry(*v).or_default() += n;
            }
            for (v, n) in &g.artifacts {
                *t.artifacts.entry(*v).or_default() += n;
            }
        }
        t
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Stats) {
        self.stray_writes.extend(other.stray_writes.iter().cloned());
        for (k, g) in &other.groups {
            let t = self.groups.entry(k).or_default();
            t.sequences += g.sequences;
            t.instructions += g.instructions;
            t.tested += g.tested;
            t.mismatches += g.mismatches;
            for (v, n) in &g.exceptions {
                *t.exceptions.entry(*v).or_default() += n;
            }
            for (v, n) in &g.artifacts {
                *t.artifacts.entry(*v).or_default() += n;
            }
        }
    }
}

/// Runs `seqs` (numbered from `first`) on both machines in batches of
/// `batch`; returns the mismatches and adds to `stats`.
pub fn check(
    hw: &mut dyn Hardware,
    seqs: &[Sequence],
    first: u64,
    batch: usize,
    stats: &mut Stats,
) -> Result<Vec<Mismatch>, String> {
    let batch = batch.clamp(1, layout::MAX_BATCH);
    let mut mismatches = Vec::new();
    let mut stray = Vec::new();
    let mut start = 0;
    while start < seqs.len() {
        let end = (start + batch).min(seqs.len());
        let part = &seqs[start..end];
        let img = image::build(part)?;
        let (e, machine) = emu::run_machine(&img, &emu::model_for(hw.vendor()));
        let h = hw.run(&img)?;
        if e.failed.is_none() && h.failed.is_none() {
            if let Some(a) =
                image::first_difference(hw.memory(), machine.ram.as_slice(), part.len())
            {
                stray.push(format!(
                    "batch of sequences {}..{}: page {a:#x} differs after the batch",
                    first + start as u64,
                    first + end as u64
                ));
            }
        }
        drop(machine);
        let stop_at = [&e.failed, &h.failed]
            .iter()
            .filter_map(|f| f.as_ref().map(|(k, _)| *k as usize))
            .min()
            .unwrap_or(part.len())
            .min(part.len());
        for (k, seq) in part.iter().enumerate().take(stop_at) {
            let he = Outcome::parse(image::output_record(&h.out, k));
            let ee = Outcome::parse(image::output_record(&e.out, k));
            let a = seq.flag_analysis();
            let c = compare::compare(seq, &img.code[k], &a, &he, &ee);
            let diffs = c.diffs;
            count(stats, seq, &he, !diffs.is_empty());
            for art in c.artifacts {
                *stats
                    .groups
                    .entry(seq.group)
                    .or_default()
                    .artifacts
                    .entry(art)
                    .or_default() += 1;
            }
            if !diffs.is_empty() {
                mismatches.push(Mismatch {
                    index: first + (start + k) as u64,
                    seq: seq.clone(),
                    diffs,
                    hw: Some(he),
                    emu: Some(ee),
                    stopped: None,
                    code_at: img.code[k].base,
                });
            }
        }
        if stop_at < part.len() {
            let why: Vec<String> = [&h.failed, &e.failed]
                .iter()
                .filter_map(|f| f.as_ref())
                .filter(|(k, _)| *k as usize == stop_at)
                .map(|(_, w)| w.clone())
                .collect();
            let seq = &part[stop_at];
            let done = |o: &RunOutput| {
                let r = Outcome::parse(image::output_record(&o.out, stop_at));
                r.done.then_some(r)
            };
            count(
                stats,
                seq,
                &Outcome::parse(image::output_record(&h.out, stop_at)),
                true,
            );
            mismatches.push(Mismatch {
                index: first + (start + stop_at) as u64,
                seq: seq.clone(),
                diffs: Vec::new(),
                hw: done(&h),
                emu: done(&e),
                stopped: Some(why.join("; ")),
                code_at: img.code[stop_at].base,
            });
            start += stop_at + 1;
        } else {
            start = end;
        }
    }
    stats.stray_writes.extend(stray);
    Ok(mismatches)
}

fn count(stats: &mut Stats, seq: &Sequence, hw: &Outcome, bad: bool) {
    let g = stats.groups.entry(seq.group).or_default();
    g.sequences += 1;
    g.instructions += seq.len() as u64;
    g.tested += seq.flat().iter().filter(|(_, i)| !i.setup).count() as u64;
    if let Some(e) = hw.exception {
        *g.exceptions.entry(e.vector).or_default() += 1;
    }
    if bad {
        g.mismatches += 1;
    }
}

/// Runs one sequence on both machines: its differences, or why it could not
/// be compared.
pub fn check_one(hw: &mut dyn Hardware, seq: &Sequence) -> Result<Option<Mismatch>, String> {
    let mut stats = Stats::default();
    Ok(check(hw, std::slice::from_ref(seq), 0, 1, &mut stats)?
        .into_iter()
        .next())
}
