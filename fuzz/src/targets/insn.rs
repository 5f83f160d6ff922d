//! `insn`: random instruction bytes in real mode, 32-bit protected mode,
//! 64-bit mode at CPL 0 and 64-bit mode at CPL 3, on the Intel and AMD
//! presets. Each mode has a kit program (built once) whose one case body
//! is a slot of NOPs; per input the slot is overwritten with generated
//! code and the program runs from boot under an instruction limit.
//!
//! Defined: any `Stop`. `Unimplemented` names are reported as findings.

use super::{code, stop_outcome};
use crate::source::Source;
use crate::{Target, Verdict};
use guestkit::layout::{MIN_RAM, RECORD_SIZE, RESULTS};
use guestkit::{enter_user, Asm, AsmResult, Program, Record};
use nestemu::cpu::cpuid::CpuModel;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig};

/// Bytes of the code slot.
pub const SLOT: usize = 256;
/// Instructions a run may take (booting a kit program takes a few
/// thousand).
const MAX_INSNS: u64 = 60_000;

/// Marks a slot in an image: the bytes after it are the slot.
const MARKER: &[u8; 16] = b"nestemu-fuzz-slt";

/// Emits a slot: a jump over the marker, the marker, then `len` NOPs.
pub fn emit_slot(a: &mut Asm, len: usize) -> AsmResult {
    let mut over = a.label();
    a.jmp(over.l)?;
    a.db(MARKER)?;
    a.set(&mut over)?;
    a.db(&vec![0x90; len])
}

/// The image offset of the slot emitted by [`emit_slot`].
pub fn find_slot(image: &[u8]) -> Option<usize> {
    image
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .map(|p| p + MARKER.len())
}

/// A mode to run code in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    Prot32,
    Long64,
    User64,
}

const MODES: [Mode; 4] = [Mode::Real, Mode::Prot32, Mode::Long64, Mode::User64];

impl Mode {
    fn bits(self) -> u8 {
        match self {
            Mode::Real => 16,
            Mode::Prot32 => 32,
            _ => 64,
        }
    }

    fn program(self) -> Program {
        let mut p = Program::new();
        let slot = |a: &mut Asm| emit_slot(a, SLOT);
        match self {
            Mode::Real => p.real_case("slot", slot),
            Mode::Prot32 => p.prot_case("slot", slot),
            Mode::Long64 => p.long_case("slot", slot),
            Mode::User64 => p.long_case("slot", |a| {
                enter_user(a)?;
                emit_slot(a, SLOT)
            }),
        }
        p
    }
}

/// The insn target: the four programs and their slot offsets.
#[derive(Debug)]
pub struct Insn {
    images: Vec<(Mode, Vec<u8>, usize)>,
}

impl Insn {
    /// Builds the programs.
    pub fn new() -> Self {
        let images = MODES
            .iter()
            .map(|&mode| {
                let built = mode.program().build().expect("the slot programs assemble");
                let at = find_slot(&built.image).expect("the slot is in the image");
                (mode, built.image, at)
            })
            .collect();
        Self { images }
    }
}

impl Default for Insn {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Insn {
    fn name(&self) -> &'static str {
        "insn"
    }

    fn max_len(&self) -> usize {
        400
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        let (mode, image, at) = &self.images[src.below(4) as usize];
        let amd = src.bool();
        let code = code::stream(&mut src, mode.bits(), SLOT);
        let mut img = image.clone();
        img[*at..*at + code.len()].copy_from_slice(&code);
        let mut m = Machine::new(MachineConfig {
            model: if amd {
                CpuModel::amd()
            } else {
                CpuModel::intel()
            },
            mem_bytes: MIN_RAM,
            max_insns: Some(MAX_INSNS),
            ..Default::default()
        });
        multiboot::boot(&mut m, &img, "fuzz", &[])
            .map_err(|e| format!("the kit image does not load: {e}"))?;
        let stop = super::run_bounded(&mut m);
        let mut o = stop_outcome(&m, stop.as_ref());
        let mut rec = vec![0u8; RECORD_SIZE as usize];
        m.peek_phys(RESULTS, &mut rec);
        let r = Record::parse(&rec);
        let exc = match r.exception {
            Some((v, _, _)) => format!(", exception {v}"),
            None if r.done => ", case done".into(),
            None => String::new(),
        };
        o.label = format!("{mode:?}: {}{exc}", o.label);
        Ok(o)
    }
}
