//! Reading output records and comparing the two machines' outcomes.

use crate::flags::{self, Analysis};
use crate::layout::{self, output};
use crate::seq::Sequence;

/// An exception a sequence took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Vector.
    pub vector: u8,
    /// Error code (0 when none is pushed).
    pub error: u64,
    /// The RIP pushed.
    pub rip: u64,
    /// CR2 at the exception (meaningful for #PF).
    pub cr2: u64,
    /// The RFLAGS pushed.
    pub rflags: u64,
}

/// What one machine left in a sequence's output record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// RAX..R15.
    pub gprs: [u64; 16],
    /// RFLAGS at the end (or at the exception).
    pub rflags: u64,
    /// The exception taken, if any.
    pub exception: Option<Exception>,
    /// The sequence's state was stored.
    pub done: bool,
    /// The end mark of the sequence end control came through
    /// ([`layout::output::ENDED`]).
    pub ended: u32,
    /// The windows' contents afterwards.
    pub scratch: Vec<u8>,
    /// The x87/SSE state afterwards (FXSAVE64 image).
    pub fpu: Vec<u8>,
}

impl Outcome {
    /// Decodes an output record.
    pub fn parse(rec: &[u8]) -> Self {
        let q = |o: u64| u64::from_le_bytes(rec[o as usize..o as usize + 8].try_into().expect("8"));
        let mut gprs = [0; 16];
        for (n, g) in gprs.iter_mut().enumerate() {
            *g = q(output::GPRS + 8 * n as u64);
        }
        let v = q(output::EXC_VECTOR);
        Self {
            gprs,
            rflags: q(output::RFLAGS),
            exception: (v != 0).then(|| Exception {
                vector: (v - 1) as u8,
                error: q(output::EXC_ERROR),
                rip: q(output::EXC_RIP),
                cr2: q(output::EXC_CR2),
                rflags: q(output::EXC_RFLAGS),
            }),
            done: q(output::DONE) == 1,
            ended: q(output::ENDED) as u32,
            scratch: rec[output::WINDOWS as usize..][..layout::WINDOW_BYTES as usize].to_vec(),
            fpu: rec[output::FPU as usize..][..layout::FPU_BYTES as usize].to_vec(),
        }
    }
}

/// Register names in encoding order.
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Where a sequence's code is and where each instruction starts.
#[derive(Clone, Debug)]
pub struct CodeMap {
    /// Address of the first instruction.
    pub base: u64,
    /// Offset of each flat instruction.
    pub offsets: Vec<u32>,
}

impl CodeMap {
    /// The flat index of the instruction at `rip`, or the length if `rip` is
    /// not an instruction start of the sequence (the end, or elsewhere).
    pub fn index(&self, rip: u64, len: usize) -> usize {
        let off = rip.wrapping_sub(self.base);
        self.offsets
            .iter()
            .take(len)
            .position(|o| *o as u64 == off)
            .unwrap_or(len)
    }
}

/// One difference between the machines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// What differs.
    pub what: String,
    /// The hardware's value.
    pub hw: String,
    /// nestemu's value.
    pub emu: String,
}

/// Behaviour of the PVM oracle that is not the processor's, and is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    /// A #GP(0) from ring 3 goes through KVM's instruction emulator, which
    /// raises #UD instead for instructions it cannot emulate (VEX, POPCNT,
    /// ...). Accepted when nestemu raised #GP(0) or #SS(0) for a memory
    /// operand that is not canonical.
    UdForGp,
    /// KVM's emulator honours an SS override in 64-bit mode and reports #SS
    /// for a non-canonical `SS:[RAX]`; the SDM (Vol. 1 3.3.7.1) says the
    /// override is ignored, so nestemu raises #GP(0).
    SsOverride,
    /// CMPXCHG16B with a misaligned, non-canonical operand: hardware raises
    /// #GP(0) for the alignment, and KVM's emulator, handling that #GP, finds
    /// the non-canonical address first (#SS for a stack reference).
    AlignmentAfterCanonical,
    /// PVM clears RFLAGS.NT whenever it returns to ring 3 (after an
    /// exception, a shadow-paging fault or a host interrupt, at any point):
    /// NT set on nestemu and clear on hardware, in the final or the pushed
    /// RFLAGS, is not a difference.
    NtAfterIret,
    /// An access that starts canonical and ends non-canonical: KVM's
    /// emulator (which handles the #GP) checks only the first byte and
    /// reports a #PF at 0x8000_0000_0000; nestemu raises #GP(0) (#SS(0)).
    CanonicalEnd,
    /// Not an oracle artifact but a limit of the flag analysis: a corrupted
    /// return address took control out of the sequence into the code of
    /// another sequence of the batch, which ended it (its end mark is not
    /// the sequence's). The flags that foreign path leaves undefined are not
    /// known, so the status flags and the x87 condition codes are not
    /// compared; everything else is.
    LeftSequence,
    /// A #GP(0) of a SIMD instruction that KVM's emulator (which handles
    /// every #GP from ring 3 under PVM) cannot emulate arrives as #UD: a
    /// misaligned 16-byte operand of a legacy SSE form, or LDMXCSR of a
    /// value with reserved bits set. The CPU faulted on both; only the
    /// vector is the emulator's.
    SimdUdForGp,
    /// KVM's emulator, handling the #GP of an MMX instruction, touches the
    /// MMX register with an MMX instruction of its own, so the guest's FPU
    /// state shows the x87-to-MMX transition (TOP = 0, tags valid) that the
    /// faulting instruction did not make.
    MmxGpTransition,
    /// Not an oracle artifact but a host feature nestemu's models leave out:
    /// the AMD CPU accepts MXCSR bit 17 (MM, misaligned SSE mode; CPUID
    /// 8000_0001H ECX bit 7, AMD APM Vol. 4 "Misaligned Access Support");
    /// a sequence that sets it is not compared.
    MisalignedSseMode,
    /// A ring-3 access to the upper half of the address space: PVM reports
    /// the #PF with P and RSVD set (its own mappings live there); the guest's
    /// page tables say not present.
    UpperHalfRsvd,
}

impl Artifact {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::UdForGp => "PVM #UD for #GP",
            Artifact::SsOverride => "KVM emulator honours SS override",
            Artifact::AlignmentAfterCanonical => "KVM emulator: canonical before alignment",
            Artifact::NtAfterIret => "PVM drops NT at IRET",
            Artifact::CanonicalEnd => "KVM emulator: #PF for a non-canonical end",
            Artifact::UpperHalfRsvd => "PVM: RSVD #PF in the upper half",
            Artifact::SimdUdForGp => "PVM #UD for a SIMD #GP (alignment, MXCSR)",
            Artifact::MmxGpTransition => "KVM emulator: MMX transition during a #GP",
            Artifact::MisalignedSseMode => {
                "host feature not modelled: AMD MXCSR.MM (misaligned SSE), not compared"
            }
            Artifact::LeftSequence => {
                "control left the sequence for another's code: flags not compared"
            }
        }
    }
}

/// The result of comparing one sequence.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Differences that are not architecturally undefined.
    pub diffs: Vec<Difference>,
    /// Oracle artifacts that were masked.
    pub artifacts: Vec<Artifact>,
}

/// RFLAGS.NT.
const NT: u64 = 1 << 14;

/// The linear address of the memory operand of `ins` with the registers
/// `gprs` (FS and GS bases are zero in the harness).
fn operand_address(ins: &iced_x86::Instruction, gprs: &[u64; 16]) -> Option<u64> {
    use iced_x86::{Mnemonic, OpKind, Register};
    let mem = (0..ins.op_count()).find(|n| ins.op_kind(*n) == OpKind::Memory)?;
    let reg = |r: Register| -> Option<u64> {
        let v = *gprs.get(r.full_register() as usize - Register::RAX as usize)?;
        Some(match r.size() {
            4 => v & 0xffff_ffff,
            2 => v & 0xffff,
            1 => v & 0xff,
            _ => v,
        })
    };
    // BT and friends with a register bit offset address outside the operand
    // (SDM Vol. 2A BT): the operand-sized word holding the bit.
    let mut extra = 0u64;
    if matches!(
        ins.mnemonic(),
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    ) && ins.op_kind(1) == OpKind::Register
    {
        let r = ins.op1_register();
        let bits = r.size() as u32 * 8;
        let off = ((reg(r)? << (64 - bits)) as i64) >> (64 - bits);
        extra = (off.div_euclid(bits as i64) * r.size() as i64) as u64;
    }
    let la = ins.virtual_address(mem, 0, |r, _, _| {
        if r.is_segment_register() {
            return Some(0);
        }
        reg(r)
    })?;
    Some(la.wrapping_add(extra))
}

/// True if the memory operand of `ins` is not canonical with the registers
/// `gprs` (48-bit linear addresses).
fn noncanonical_operand(ins: &iced_x86::Instruction, gprs: &[u64; 16]) -> bool {
    let Some(la) = operand_address(ins, gprs) else {
        return false;
    };
    let size = ins.memory_size().size().max(1) as u64;
    let canon = |a: u64| ((a as i64) << 16 >> 16) as u64 == a;
    !canon(la) || !canon(la.wrapping_add(size - 1))
}

/// Compares the outcomes of `seq` on hardware and on nestemu; returns the
/// differences that are not architecturally undefined and the oracle
/// artifacts masked.
pub fn compare(
    seq: &Sequence,
    map: &CodeMap,
    analysis: &Analysis,
    hw: &Outcome,
    emu: &Outcome,
) -> Comparison {
    // MXCSR bit 17 set on the host: LDMXCSR or FXRSTOR put the AMD CPU in
    // misaligned-SSE mode, which nestemu's models do not offer (bit 17 is
    // reserved there, so nestemu raised #GP): the runs are not comparable.
    if hw.fpu.len() >= 28 && hw.fpu[26] & 0x02 != 0 {
        return Comparison {
            diffs: Vec::new(),
            artifacts: vec![Artifact::MisalignedSseMode],
        };
    }
    let mut artifacts = Vec::new();
    let mut hw = hw.clone();
    let flat = seq.flat();
    if let (Some(h), Some(e)) = (&mut hw.exception, emu.exception) {
        let k = map.index(h.rip, flat.len());
        let noncanonical = flat
            .get(k)
            .is_some_and(|(_, i)| noncanonical_operand(&i.ins, &hw.gprs));
        let ss_override = flat
            .get(k)
            .is_some_and(|(_, i)| i.ins.segment_prefix() == iced_x86::Register::SS);
        if h.vector == 12
            && e.vector == 13
            && e.error == 0
            && e.rip == h.rip
            && ss_override
            && noncanonical
        {
            *h = e;
            artifacts.push(Artifact::SsOverride);
        }
        let misaligned_16b = flat.get(k).is_some_and(|(_, i)| {
            i.ins.mnemonic() == iced_x86::Mnemonic::Cmpxchg16b
                && operand_address(&i.ins, &hw.gprs).is_some_and(|a| a & 15 != 0)
        });
        if matches!(h.vector, 12 | 13)
            && e.vector == 13
            && e.error == 0
            && e.rip == h.rip
            && misaligned_16b
            && noncanonical
        {
            *h = e;
            artifacts.push(Artifact::AlignmentAfterCanonical);
        }
        if h.vector == 6
            && matches!(e.vector, 12 | 13)
            && e.error == 0
            && e.rip == h.rip
            && noncanonical
        {
            *h = e;
            artifacts.push(Artifact::UdForGp);
        }
        let simd_gp_cause = flat.get(k).is_some_and(|(_, i)| {
            let ldmxcsr = i.ins.mnemonic() == iced_x86::Mnemonic::Ldmxcsr;
            let misaligned = i.ins.memory_size().size() == 16
                && operand_address(&i.ins, &hw.gprs).is_some_and(|a| a & 15 != 0);
            let simd = (0..i.ins.op_count()).any(|n| {
                i.ins.op_kind(n) == iced_x86::OpKind::Register
                    && (i.ins.op_register(n).is_xmm() || i.ins.op_register(n).is_mm())
            });
            ldmxcsr || (simd && misaligned)
        });
        if h.vector == 6 && e.vector == 13 && e.error == 0 && e.rip == h.rip && simd_gp_cause {
            *h = e;
            artifacts.push(Artifact::SimdUdForGp);
        }
        if h.vector == 14
            && h.cr2 == 0x8000_0000_0000
            && matches!(e.vector, 12 | 13)
            && e.error == 0
            && e.rip == h.rip
        {
            *h = e;
            artifacts.push(Artifact::CanonicalEnd);
        }
        if h.vector == 14
            && e.vector == 14
            && h.cr2 >= 0xffff_8000_0000_0000
            && h.cr2 == e.cr2
            && h.error & 9 == 9
            && h.error & !9 == e.error
        {
            h.error = e.error;
            artifacts.push(Artifact::UpperHalfRsvd);
        }
    }
    if artifacts.contains(&Artifact::CanonicalEnd) {
        // The emulator may have written the canonical part of the operand.
        let end = layout::WINDOW_BYTES as usize;
        hw.scratch[end - 16..].copy_from_slice(&emu.scratch[end - 16..]);
    }
    if hw.rflags & NT == 0 && emu.rflags & NT != 0 {
        hw.rflags |= NT;
        artifacts.push(Artifact::NtAfterIret);
    }
    // An MMX instruction's #GP is handled by KVM's emulator, which reads
    // the MMX register operand with an MMX instruction on the guest's FPU
    // state: the x87-to-MMX transition (TOP = 0, all tags valid) happens
    // there. A #PF, which the CPU delivers itself, shows that the CPU does
    // not make the transition for a faulting instruction.
    let mmx_gp = matches!((&hw.exception, &emu.exception), (Some(h), Some(e))
        if h.vector == 13 && e.vector == 13 && h.rip == e.rip)
        && hw.exception.is_some_and(|h| {
            let k = map.index(h.rip, flat.len());
            flat.get(k).is_some_and(|(_, i)| {
                (0..i.ins.op_count()).any(|n| {
                    i.ins.op_kind(n) == iced_x86::OpKind::Register && i.ins.op_register(n).is_mm()
                })
            })
        });
    if mmx_gp && hw.fpu[4] == 0xff && hw.fpu[3] & 0x38 == 0 && hw.fpu[2..5] != emu.fpu[2..5] {
        hw.fpu[4] = emu.fpu[4];
        hw.fpu[3] = (hw.fpu[3] & !0x38) | (emu.fpu[3] & 0x38);
        artifacts.push(Artifact::MmxGpTransition);
    }
    if let (Some(h), Some(e)) = (&mut hw.exception, emu.exception) {
        // Any exit to KVM (a shadow-paging fault, a host interrupt) clears NT
        // before the exception pushes RFLAGS.
        if h.rflags & NT == 0 && e.rflags & NT != 0 {
            h.rflags |= NT;
            artifacts.push(Artifact::NtAfterIret);
        }
    }
    let hw = &hw;
    let mut d = Vec::new();
    let mut diff = |what: &str, a: String, b: String| {
        if a != b {
            d.push(Difference {
                what: what.into(),
                hw: a,
                emu: b,
            });
        }
    };
    let len = seq.len();
    // The flags undefined where each machine stopped: at the faulting
    // instruction, at the end, or anywhere if control left the sequence (a
    // RET to a corrupted address).
    let undefined_at = |o: &Outcome| match o.exception {
        None => analysis.end,
        Some(e) => match map.index(e.rip, len) {
            k if k < len => analysis.at(k),
            _ if e.rip == crate::image::harness().seq_end => analysis.end,
            _ => analysis.any(),
        },
    };
    // A normal end through another sequence's end: a corrupted return
    // address led into foreign code (the batch decides whose, so the same
    // sequence alone loops back to its own start instead).
    let mark = map.base as u32;
    let left = |o: &Outcome| o.done && o.exception.is_none() && o.ended != mark;
    let mut undefined = undefined_at(hw) | undefined_at(emu);
    if left(hw) || left(emu) {
        undefined |= flags::STATUS | flags::CC;
        artifacts.push(Artifact::LeftSequence);
    }
    diff("done", hw.done.to_string(), emu.done.to_string());
    for (n, name) in GPR_NAMES.iter().enumerate() {
        diff(
            name,
            format!("{:#x}", hw.gprs[n]),
            format!("{:#x}", emu.gprs[n]),
        );
    }
    let mask = !undefined;
    diff(
        "rflags",
        format!("{:#x}", hw.rflags & mask),
        format!("{:#x}", emu.rflags & mask),
    );
    match (hw.exception, emu.exception) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            diff("vector", a.vector.to_string(), b.vector.to_string());
            diff(
                "error code",
                format!("{:#x}", a.error),
                format!("{:#x}", b.error),
            );
            diff(
                "fault rip",
                format!("{:#x}", a.rip),
                format!("{:#x}", b.rip),
            );
            if a.vector == 14 {
                diff("cr2", format!("{:#x}", a.cr2), format!("{:#x}", b.cr2));
            }
            diff(
                "pushed rflags",
                format!("{:#x}", a.rflags & mask),
                format!("{:#x}", b.rflags & mask),
            );
        }
        (a, b) => diff("exception", show_exc(a), show_exc(b)),
    }
    let trans = seq.group == "x87trans";
    fpu_diffs(&hw.fpu, &emu.fpu, undefined, trans, &mut diff);
    for (k, (a, b)) in hw.scratch.iter().zip(&emu.scratch).enumerate() {
        if a != b {
            let at = window_address(k);
            diff(
                &format!("mem[{at:#x}]"),
                format!("{a:#04x}"),
                format!("{b:#04x}"),
            );
        }
    }
    if d.is_empty() {
        Comparison {
            diffs: d,
            artifacts,
        }
    } else {
        Comparison {
            diffs: d,
            artifacts: Vec::new(),
        }
    }
}

/// The distance in units in the last place between two finite
/// extended-precision values of the same sign (normal or denormal), or
/// `None`. Denormals (exponent 0, J = 0) and normals (J = 1) number the
/// representable values contiguously.
fn ulps(a: u128, b: u128) -> Option<u128> {
    let parts = |v: u128| ((v >> 64) as u16, v as u64);
    let ((ea, ma), (eb, mb)) = (parts(a), parts(b));
    let j = 1u64 << 63;
    let finite = |e: u16, m: u64| {
        let e = e & 0x7fff;
        (e == 0 && m & j == 0) || (e != 0 && e != 0x7fff && m & j != 0)
    };
    if ea >> 15 != eb >> 15 || !finite(ea, ma) || !finite(eb, mb) {
        return None;
    }
    let idx = |e: u16, m: u64| ((e & 0x7fff) as u128) << 63 | (m & !j) as u128;
    Some(idx(ea, ma).abs_diff(idx(eb, mb)))
}

/// Compares two FXSAVE64 images field by field; C0-C3 undefined in
/// `undefined` are masked. With `trans` (the transcendental group) register
/// values within one unit in the last place agree and C1 (rounded up) is not
/// compared: the SDM states that accuracy for F2XM1, FYL2X, FYL2XP1, FSIN,
/// FCOS, FSINCOS, FPTAN and FPATAN (Vol. 1 8.3.10), not the last bit.
fn fpu_diffs(
    a: &[u8],
    b: &[u8],
    undefined: u64,
    trans: bool,
    diff: &mut impl FnMut(&str, String, String),
) {
    let field = |img: &[u8], off: usize, len: usize| -> u128 {
        let mut v = [0u8; 16];
        v[..len].copy_from_slice(&img[off..off + len]);
        u128::from_le_bytes(v)
    };
    let undefined = if trans {
        undefined | flags::C1
    } else {
        undefined
    };
    let fsw_mask = !(flags::fsw_bits(undefined) as u128);
    for (name, off, len, mask) in [
        ("fcw", 0, 2, u128::MAX),
        ("fsw", 2, 2, fsw_mask),
        ("ftw", 4, 1, u128::MAX),
        ("fop", 6, 2, u128::MAX),
        ("fip", 8, 8, u128::MAX),
        ("fdp", 16, 8, u128::MAX),
        ("mxcsr", 24, 4, u128::MAX),
    ] {
        diff(
            name,
            format!("{:#x}", field(a, off, len) & mask),
            format!("{:#x}", field(b, off, len) & mask),
        );
    }
    for k in 0..8 {
        let off = 32 + 16 * k;
        let (x, y) = (field(a, off, 10), field(b, off, 10));
        if trans && ulps(x, y).is_some_and(|d| d <= 1) {
            continue;
        }
        diff(
            &format!("st({k})"),
            format!("{x:#022x}"),
            format!("{y:#022x}"),
        );
    }
    for k in 0..16 {
        let off = 160 + 16 * k;
        diff(
            &format!("xmm{k}"),
            format!("{:#x}", field(a, off, 16)),
            format!("{:#x}", field(b, off, 16)),
        );
    }
}

/// The address of byte `k` of the windows as stored in records.
pub fn window_address(k: usize) -> u64 {
    let mut k = k as u64;
    for (at, len) in layout::WINDOWS {
        if k < len {
            return at + k;
        }
        k -= len;
    }
    u64::MAX
}

/// An exception as text.
pub fn show_exc(e: Option<Exception>) -> String {
    match e {
        None => "none".into(),
        Some(e) => format!(
            "{} err {:#x} at {:#x}{}",
            vector_name(e.vector),
            e.error,
            e.rip,
            if e.vector == 14 {
                format!(" cr2 {:#x}", e.cr2)
            } else {
                String::new()
            }
        ),
    }
}

/// The mnemonic of an exception vector.
pub fn vector_name(v: u8) -> String {
    const N: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    N.get(v as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("vector {v}"))
}

/// The status flags undefined at the end of `seq` as text (for reports).
pub fn show_flags(f: u64) -> String {
    let mut v = Vec::new();
    for (b, n) in [
        (flags::CF, "CF"),
        (flags::PF, "PF"),
        (flags::AF, "AF"),
        (flags::ZF, "ZF"),
        (flags::SF, "SF"),
        (flags::OF, "OF"),
    ] {
        if f & b != 0 {
            v.push(n);
        }
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}
