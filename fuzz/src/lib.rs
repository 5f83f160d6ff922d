//! nestemu-fuzz: deterministic fuzzing of every input boundary of nestemu
//! (issue 8 part 2), on stable Rust.
//!
//! A [`Target`] decodes an input's bytes into a structured case (see
//! [`source`]), runs it through the emulator and names the outcome, or says
//! that the outcome lies outside the architecturally defined set. The
//! [`runner`] draws inputs from a seeded SplitMix64 ([`rng`]), fresh or
//! mutated from a corpus of inputs that produced something new
//! ([`mutate`]), runs each under `catch_unwind` and a wall-clock watchdog,
//! and reports per target the iterations, the distinct outcomes and every
//! failure: a panic, a run that does not stop, an undefined outcome, or
//! heap growth beyond the guest RAM the input asked for ([`alloc`], where
//! installed). The same seed and iteration count give the same inputs,
//! outcomes and report on every host.
//!
//! Targets: `loader`, `cli`, `paging`, `insn`, `vmcs`, `vmcb`, `snapshot`
//! (see [`targets`]).

pub mod alloc;
pub mod mutate;
pub mod rng;
pub mod runner;
pub mod source;
pub mod targets;

/// What one input did, when it did something the architecture (or the
/// command-line contract) defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// A short name of the outcome, as reported ("stop: instruction limit",
    /// "vmfail 7", "LoadError: ... lies outside RAM ..."). Numbers that vary
    /// per input should be left out so that outcomes group.
    pub label: String,
    /// Extra novelty signal for the corpus (e.g. how far a guest got),
    /// not reported.
    pub signal: u64,
    /// An emulator gap the input reached: the `what` of
    /// `Stop::Unimplemented`. A finding, not a failure.
    pub unimplemented: Option<String>,
    /// Bytes of guest RAM the input legitimately asked for (a RAM size,
    /// a snapshot's declared RAM): allowed on top of
    /// [`runner::HEAP_LIMIT`].
    pub ram: u64,
}

impl Outcome {
    /// An outcome with no extra signal.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            signal: 0,
            unimplemented: None,
            ram: 0,
        }
    }

    /// The same outcome with a novelty signal.
    pub fn with_signal(mut self, signal: u64) -> Self {
        self.signal = signal;
        self
    }

    /// The same outcome with `ram` bytes of guest RAM allowed.
    pub fn with_ram(mut self, ram: u64) -> Self {
        self.ram = ram;
        self
    }
}

/// The verdict on one input: a defined outcome, or a description of why
/// the outcome is not one.
pub type Verdict = Result<Outcome, String>;

/// A fuzz target.
pub trait Target {
    /// The name on the command line.
    fn name(&self) -> &'static str;
    /// The longest input to generate or keep.
    fn max_len(&self) -> usize;
    /// Runs one input.
    fn run(&self, input: &[u8]) -> Verdict;
}

/// Replaces every run of digits (and hexadecimal numbers) in `s` with `#`,
/// so that messages differing only in addresses and sizes group together.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let hex = b[i] == b'0' && b.get(i + 1).is_some_and(|&c| c == b'x' || c == b'X');
            i += if hex { 2 } else { 1 };
            while i < b.len() && (b[i].is_ascii_hexdigit() || (hex && b[i] == b'_')) {
                if !hex && !b[i].is_ascii_digit() {
                    break;
                }
                i += 1;
            }
            out.push('#');
        } else {
            let c = s[i..].chars().next().unwrap_or('?');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalize_groups_numbers() {
        assert_eq!(
            super::normalize("segment at 0x1f000..0x2000 is 4096 bytes"),
            "segment at #..# is # bytes"
        );
        assert_eq!(super::normalize("é 12ab"), "é #ab");
    }
}
