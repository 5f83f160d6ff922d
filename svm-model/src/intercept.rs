//! Intercept decisions (APM Vol. 2 15.7-15.14): given the controls of the
//! running guest and the event, does the guest exit, and with what
//! information? Every function returns `Some(ExitInfo)` for a #VMEXIT and
//! `None` when the guest carries on; the interpreter orders the decisions
//! against exceptions as table 15-7 ("Instruction Intercepts") prescribes.
//!
//! Interrupt-like events (INTR, NMI, SMI, INIT, VINTR) are decided in
//! [`crate::interrupts`], which also applies GIF.

use crate::bitmaps::{iopm_intercepts, msrpm_intercepts};
use crate::exit_code::ExitCode;
use crate::features::SvmConfig;
use crate::guest::GuestControls;
use crate::mem::PhysMem;
use crate::state::AddressSize;
use crate::vmcb::{Misc1, Misc2, Misc3};
use crate::vmexit::{ExitInfo, InsnBytes};
use mmu::{Cr0, SegReg};
use serde::{Deserialize, Serialize};

/// Which intercept vector word a single-bit intercept lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    M1(Misc1),
    M2(Misc2),
    M3(Misc3),
}

macro_rules! simple_intercepts {
    ($( $id:ident => $word:ident($bit:ident), $code:ident, $insn:literal; )*) => {
        /// Intercepts that are one bit and carry no exit information: the
        /// instruction intercepts of table 15-7 without decode assists, plus
        /// FERR_FREEZE and shutdown (15.14).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Intercept {
            $( #[doc = $insn] $id, )*
        }

        impl Intercept {
            /// Every simple intercept.
            pub const ALL: &'static [Intercept] = &[ $( Intercept::$id, )* ];

            fn word(self) -> Word {
                match self { $( Intercept::$id => Word::$word($word::$bit), )* }
            }

            /// The exit code.
            pub const fn exit_code(self) -> ExitCode {
                match self { $( Intercept::$id => ExitCode::$code, )* }
            }
        }
    };
}

type M1 = Misc1;
type M2 = Misc2;
type M3 = Misc3;

simple_intercepts! {
    IdtrRead => M1(IDTR_READ), VMEXIT_IDTR_READ, "SIDT.";
    GdtrRead => M1(GDTR_READ), VMEXIT_GDTR_READ, "SGDT.";
    LdtrRead => M1(LDTR_READ), VMEXIT_LDTR_READ, "SLDT.";
    TrRead => M1(TR_READ), VMEXIT_TR_READ, "STR.";
    IdtrWrite => M1(IDTR_WRITE), VMEXIT_IDTR_WRITE, "LIDT.";
    GdtrWrite => M1(GDTR_WRITE), VMEXIT_GDTR_WRITE, "LGDT.";
    LdtrWrite => M1(LDTR_WRITE), VMEXIT_LDTR_WRITE, "LLDT.";
    TrWrite => M1(TR_WRITE), VMEXIT_TR_WRITE, "LTR.";
    Rdtsc => M1(RDTSC), VMEXIT_RDTSC, "RDTSC.";
    Rdpmc => M1(RDPMC), VMEXIT_RDPMC, "RDPMC.";
    Pushf => M1(PUSHF), VMEXIT_PUSHF, "PUSHF (takes priority over any exception).";
    Popf => M1(POPF), VMEXIT_POPF, "POPF (takes priority over any exception).";
    Cpuid => M1(CPUID), VMEXIT_CPUID, "CPUID.";
    Rsm => M1(RSM), VMEXIT_RSM, "RSM (takes priority over any exception).";
    Iret => M1(IRET), VMEXIT_IRET, "IRET (takes priority over any exception).";
    Invd => M1(INVD), VMEXIT_INVD, "INVD.";
    Invlpga => M1(INVLPGA), VMEXIT_INVLPGA, "INVLPGA (the address is in rAX, not EXITINFO1, 15.8.3).";
    FerrFreeze => M1(FERR_FREEZE), VMEXIT_FERR_FREEZE, "Processor freeze on legacy FERR handling.";
    Shutdown => M1(SHUTDOWN), VMEXIT_SHUTDOWN, "Any condition that would shut the processor down.";
    Vmrun => M2(VMRUN), VMEXIT_VMRUN, "VMRUN.";
    Vmmcall => M2(VMMCALL), VMEXIT_VMMCALL, "VMMCALL (takes priority over exceptions).";
    Vmload => M2(VMLOAD), VMEXIT_VMLOAD, "VMLOAD.";
    Vmsave => M2(VMSAVE), VMEXIT_VMSAVE, "VMSAVE.";
    Stgi => M2(STGI), VMEXIT_STGI, "STGI.";
    Clgi => M2(CLGI), VMEXIT_CLGI, "CLGI.";
    Skinit => M2(SKINIT), VMEXIT_SKINIT, "SKINIT.";
    Rdtscp => M2(RDTSCP), VMEXIT_RDTSCP, "RDTSCP.";
    Icebp => M2(ICEBP), VMEXIT_ICEBP, "ICEBP (INT1, opcode F1h).";
    Wbinvd => M2(WBINVD), VMEXIT_WBINVD, "WBINVD and WBNOINVD.";
    Monitor => M2(MONITOR), VMEXIT_MONITOR, "MONITOR and MONITORX.";
    Xsetbv => M2(XSETBV), VMEXIT_XSETBV, "XSETBV (intercept before #GP).";
    Rdpru => M2(RDPRU), VMEXIT_RDPRU, "RDPRU.";
    Invlpgb => M3(INVLPGB), VMEXIT_INVLPGB, "INVLPGB.";
    InvlpgbIllegal => M3(INVLPGB_ILLEGAL), VMEXIT_INVLPGB_ILLEGAL, "Illegally specified INVLPGB.";
    Invpcid => M3(INVPCID), VMEXIT_INVPCID, "INVPCID.";
    Mcommit => M3(MCOMMIT), VMEXIT_MCOMMIT, "MCOMMIT.";
    Tlbsync => M3(TLBSYNC), VMEXIT_TLBSYNC, "TLBSYNC.";
}

impl Intercept {
    /// True for intercepts that are events rather than instructions (no nRIP).
    pub const fn is_event(self) -> bool {
        matches!(self, Intercept::FerrFreeze | Intercept::Shutdown)
    }
}

/// True if `i` is intercepted under `ctl`.
pub fn is_intercepted(ctl: &GuestControls, i: Intercept) -> bool {
    let v = &ctl.intercepts;
    match i.word() {
        Word::M1(b) => v.misc1.contains(b),
        Word::M2(b) => v.misc2.contains(b),
        Word::M3(b) => v.misc3.contains(b),
    }
}

/// A single-bit intercept. `next_rip` is the address of the next instruction
/// (ignored for the event intercepts).
pub fn simple(ctl: &GuestControls, i: Intercept, next_rip: u64) -> Option<ExitInfo> {
    if !is_intercepted(ctl, i) {
        return None;
    }
    let e = ExitInfo::new(i.exit_code());
    Some(if i.is_event() {
        e
    } else {
        e.with_next_rip(next_rip)
    })
}

/// The decode-assist EXITINFO1 of a MOV CRx/DRx: the GPR number, and for CR
/// accesses bit 63 (APM Vol. 2 15.8.1).
fn mov_info(cfg: &SvmConfig, gpr: Option<u8>, cr: bool) -> u64 {
    match gpr {
        Some(g) if cfg.features.decode_assists => u64::from(g & 0xf) | if cr { 1 << 63 } else { 0 },
        _ => 0,
    }
}

/// How a control register is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrRead {
    /// MOV from CRn into a GPR.
    Mov {
        /// GPR number (0-15).
        gpr: u8,
    },
    /// SMSW (reads CR0; no decode-assist information).
    Smsw,
}

/// How a control register is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrWrite {
    /// MOV to CRn from a GPR.
    Mov {
        /// GPR number (0-15).
        gpr: u8,
    },
    /// LMSW (writes CR0).
    Lmsw,
    /// CLTS (writes CR0).
    Clts,
}

/// A read of CR`cr` (APM Vol. 2 15.9 table 15-7; 15.8.1).
pub fn cr_read(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    cr: u8,
    how: CrRead,
    next_rip: u64,
) -> Option<ExitInfo> {
    let cr = cr & 0xf;
    if ctl.intercepts.cr_read & (1 << cr) == 0 {
        return None;
    }
    let gpr = match how {
        CrRead::Mov { gpr } => Some(gpr),
        CrRead::Smsw => None,
    };
    Some(
        ExitInfo::with_info(ExitCode::cr(cr, false), mov_info(cfg, gpr, true), 0)
            .with_next_rip(next_rip),
    )
}

/// A write of CR`cr` with `new` (for CR0, `old` is the current CR0): the
/// generic write intercept, then for CR0 the selective write intercept, which
/// triggers only when a bit other than TS or MP changes, always for LMSW and
/// never for CLTS (table 15-7).
pub fn cr_write(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    cr: u8,
    how: CrWrite,
    old: u64,
    new: u64,
    next_rip: u64,
) -> Option<ExitInfo> {
    let cr = cr & 0xf;
    let gpr = match how {
        CrWrite::Mov { gpr } => Some(gpr),
        _ => None,
    };
    let info = mov_info(cfg, gpr, true);
    if ctl.intercepts.cr_write & (1 << cr) != 0 {
        return Some(ExitInfo::with_info(ExitCode::cr(cr, true), info, 0).with_next_rip(next_rip));
    }
    if cr != 0 || !ctl.intercepts.misc1.contains(Misc1::CR0_SEL_WRITE) {
        return None;
    }
    let selective = match how {
        CrWrite::Clts => false,
        CrWrite::Lmsw => true,
        CrWrite::Mov { .. } => (old ^ new) & !(Cr0::TS | Cr0::MP).bits() != 0,
    };
    selective.then(|| {
        ExitInfo::with_info(ExitCode::VMEXIT_CR0_SEL_WRITE, info, 0).with_next_rip(next_rip)
    })
}

/// The trap-style CR write intercept, checked after a write of CR`cr` has
/// completed; EXITINFO1 holds the new value (table B-1 vector 4 bits 31:16).
pub fn cr_write_trap(ctl: &GuestControls, cr: u8, new: u64, next_rip: u64) -> Option<ExitInfo> {
    let cr = cr & 0xf;
    (ctl.intercepts.misc2.bits() & (1 << (16 + cr)) != 0)
        .then(|| ExitInfo::with_info(ExitCode::cr_write_trap(cr), new, 0).with_next_rip(next_rip))
}

/// The trap-style EFER write intercept, after a WRMSR of EFER completed;
/// EXITINFO1 holds the new value.
pub fn efer_write_trap(ctl: &GuestControls, new: u64, next_rip: u64) -> Option<ExitInfo> {
    ctl.intercepts
        .misc2
        .contains(Misc2::EFER_WRITE_TRAP)
        .then(|| {
            ExitInfo::with_info(ExitCode::VMEXIT_EFER_WRITE_TRAP, new, 0).with_next_rip(next_rip)
        })
}

/// A MOV to or from DR`dr` (all normal exception checks first, table 15-7).
pub fn dr_access(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    dr: u8,
    write: bool,
    gpr: u8,
    next_rip: u64,
) -> Option<ExitInfo> {
    let dr = dr & 0xf;
    let bits = if write {
        ctl.intercepts.dr_write
    } else {
        ctl.intercepts.dr_read
    };
    (bits & (1 << dr) != 0).then(|| {
        ExitInfo::with_info(ExitCode::dr(dr, write), mov_info(cfg, Some(gpr), false), 0)
            .with_next_rip(next_rip)
    })
}

/// An exception the guest raises (APM Vol. 2 15.12), checked before double-fault
/// resolution and before delivery. `error_code` goes to EXITINFO1; for #PF,
/// `fault_address` goes to EXITINFO2 (CR2 is not written when intercepted).
/// `trap_insn_next_rip`: for #BP, #OF and #BR raised by INT3, INTO and BOUND,
/// the next RIP (nRIP is saved for those). `insn_bytes`: decode assists for a
/// #PF on a data access. Vector 2 is never an exception intercept (15.12.3);
/// INTn, external interrupts and ICEBP never check these intercepts.
pub fn exception(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    vector: u8,
    error_code: Option<u32>,
    fault_address: u64,
    trap_insn_next_rip: Option<u64>,
    insn_bytes: Option<InsnBytes>,
) -> Option<ExitInfo> {
    if vector >= 32 || vector == 2 || ctl.intercepts.exceptions & (1 << vector) == 0 {
        return None;
    }
    let info2 = if vector == 14 { fault_address } else { 0 };
    let mut e = ExitInfo::with_info(
        ExitCode::exception(vector),
        error_code.map_or(0, u64::from),
        info2,
    );
    e.next_rip = trap_insn_next_rip;
    if vector == 14 && cfg.features.decode_assists {
        e.insn_bytes = insn_bytes;
    }
    Some(e)
}

/// INTn: the intercept precedes every exception check; EXITINFO1 is the vector
/// with decode assists (15.8.2).
pub fn intn(cfg: &SvmConfig, ctl: &GuestControls, vector: u8, next_rip: u64) -> Option<ExitInfo> {
    ctl.intercepts.misc1.contains(Misc1::INTN).then(|| {
        let info = if cfg.features.decode_assists {
            vector.into()
        } else {
            0
        };
        ExitInfo::with_info(ExitCode::VMEXIT_SWINT, info, 0).with_next_rip(next_rip)
    })
}

/// INVLPG: EXITINFO1 is the linear address with decode assists (15.8.3).
pub fn invlpg(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    linear: u64,
    next_rip: u64,
) -> Option<ExitInfo> {
    ctl.intercepts.misc1.contains(Misc1::INVLPG).then(|| {
        let info = if cfg.features.decode_assists {
            linear
        } else {
            0
        };
        ExitInfo::with_info(ExitCode::VMEXIT_INVLPG, info, 0).with_next_rip(next_rip)
    })
}

/// PAUSE, through the PAUSE filter (15.14.4). Updates the filter's counter.
pub fn pause(
    ctl: &mut GuestControls,
    cycles_since_last_pause: Option<u64>,
    next_rip: u64,
) -> Option<ExitInfo> {
    if !ctl.intercepts.misc1.contains(Misc1::PAUSE) {
        return None;
    }
    ctl.pause
        .pause(cycles_since_last_pause)
        .then(|| ExitInfo::new(ExitCode::VMEXIT_PAUSE).with_next_rip(next_rip))
}

/// HLT: the HLT intercept takes priority over the idle-HLT intercept (honoured
/// when the preset has IdleHltIntercept), which only triggers when no virtual
/// interrupt (V_IRQ or V_NMI) is pending.
pub fn hlt(cfg: &SvmConfig, ctl: &GuestControls, next_rip: u64) -> Option<ExitInfo> {
    let i = &ctl.intercepts;
    if i.misc1.contains(Misc1::HLT) {
        return Some(ExitInfo::new(ExitCode::VMEXIT_HLT).with_next_rip(next_rip));
    }
    let pending = ctl.vintr.v_irq || (ctl.vnmi && ctl.vintr.v_nmi);
    (cfg.features.idle_hlt && i.misc3.contains(Misc3::IDLE_HLT) && !pending)
        .then(|| ExitInfo::new(ExitCode::VMEXIT_IDLE_HLT).with_next_rip(next_rip))
}

/// MWAIT/MWAITX: the conditional intercept (monitor hardware armed, i.e. the
/// MWAIT would enter the low-power state) is checked before the unconditional
/// one (table 15-7).
pub fn mwait(ctl: &GuestControls, armed: bool, next_rip: u64) -> Option<ExitInfo> {
    let m = ctl.intercepts.misc2;
    let code = if armed && m.contains(Misc2::MWAIT_CONDITIONAL) {
        ExitCode::VMEXIT_MWAIT_CONDITIONAL
    } else if m.contains(Misc2::MWAIT) {
        ExitCode::VMEXIT_MWAIT
    } else {
        return None;
    };
    Some(ExitInfo::new(code).with_next_rip(next_rip))
}

/// An I/O instruction (IN, OUT, INS, OUTS), for the IOIO intercept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoAccess {
    /// The port.
    pub port: u16,
    /// Operand size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN or INS (otherwise OUT or OUTS).
    pub is_in: bool,
    /// INS or OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
    /// The effective address size.
    pub address_size: AddressSize,
    /// The effective segment of OUTS (INS always uses ES).
    pub segment: SegReg,
}

impl IoAccess {
    /// EXITINFO1 for the IOIO intercept (APM Vol. 2 figure 15-2): TYPE, STR,
    /// REP, SZ8/16/32, A16/32/64, SEG (string instructions, with decode
    /// assists), PORT.
    pub fn exit_info1(&self, decode_assists: bool) -> u64 {
        let size = match self.size {
            1 => 1 << 4,
            2 => 1 << 5,
            _ => 1 << 6,
        };
        let asz = match self.address_size {
            AddressSize::A16 => 1 << 7,
            AddressSize::A32 => 1 << 8,
            AddressSize::A64 => 1 << 9,
        };
        let seg = if self.string && decode_assists {
            let s = if self.is_in { SegReg::Es } else { self.segment };
            (s as u64) << 10
        } else {
            0
        };
        u64::from(self.is_in)
            | u64::from(self.string) << 2
            | u64::from(self.rep) << 3
            | size
            | asz
            | seg
            | u64::from(self.port) << 16
    }
}

/// The IOIO intercept (15.10): with IOIO_PROT, the IOPM decides. EXITINFO2 is
/// the RIP of the next instruction. Exceptions from virtual-8086 mode, IOPL and
/// the TSS bitmap come before this check; all others after.
pub fn ioio<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    mem: &mut M,
    io: &IoAccess,
    next_rip: u64,
) -> Option<ExitInfo> {
    if !ctl.intercepts.misc1.contains(Misc1::IOIO_PROT)
        || !iopm_intercepts(mem, ctl.iopm_base, io.port, io.size)
    {
        return None;
    }
    Some(
        ExitInfo::with_info(
            ExitCode::VMEXIT_IOIO,
            io.exit_info1(cfg.features.decode_assists),
            next_rip,
        )
        .with_next_rip(next_rip),
    )
}

/// RDMSR (`write == false`) or WRMSR of `msr` (15.11): after the CPL check,
/// before MSR-specific exceptions. EXITINFO1 is 0 for RDMSR, 1 for WRMSR.
pub fn msr<M: PhysMem + ?Sized>(
    ctl: &GuestControls,
    mem: &mut M,
    msr: u32,
    write: bool,
    next_rip: u64,
) -> Option<ExitInfo> {
    if !ctl.intercepts.misc1.contains(Misc1::MSR_PROT)
        || !msrpm_intercepts(mem, ctl.msrpm_base, msr, write)
    {
        return None;
    }
    Some(ExitInfo::with_info(ExitCode::VMEXIT_MSR, write.into(), 0).with_next_rip(next_rip))
}

/// What caused a task switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskSwitchSource {
    /// CALL through a task gate or TSS.
    Call,
    /// IRET with NT set.
    Iret,
    /// Far JMP.
    Jmp,
    /// An exception or interrupt through a task gate.
    Event,
}

/// The task-switch intercept (15.14.1), checked after the incoming TSS and gate
/// were validated. EXITINFO1[15:0] is the incoming TSS selector; EXITINFO2
/// holds the error code (31:0) and bits 36 (IRET), 38 (far JMP), 44 (has an
/// error code) and 48 (the RF value to save in the outgoing TSS).
pub fn task_switch(
    ctl: &GuestControls,
    tss_selector: u16,
    source: TaskSwitchSource,
    error_code: Option<u32>,
    rf: bool,
) -> Option<ExitInfo> {
    if !ctl.intercepts.misc1.contains(Misc1::TASK_SWITCH) {
        return None;
    }
    let mut info2 = u64::from(error_code.unwrap_or(0));
    if source == TaskSwitchSource::Iret {
        info2 |= 1 << 36;
    }
    if source == TaskSwitchSource::Jmp {
        info2 |= 1 << 38;
    }
    if error_code.is_some() {
        info2 |= 1 << 44;
    }
    if rf {
        info2 |= 1 << 48;
    }
    Some(ExitInfo::with_info(
        ExitCode::VMEXIT_TASK_SWITCH,
        tss_selector.into(),
        info2,
    ))
}

/// A nested page fault reported by the nested walk (APM Vol. 2 15.25.6): the
/// `error_code` (P, RW, US, RSV, ID, SS bits plus bit 32 "final translation"
/// or bit 33 "guest page table walk") in EXITINFO1 and the guest-physical
/// address in EXITINFO2. Not an intercept bit: with nested paging on, every
/// nested fault exits. Decode assists add the instruction bytes for data
/// accesses (`insn_bytes` is `None` for instruction fetches).
pub fn npf(cfg: &SvmConfig, error_code: u64, gpa: u64, insn_bytes: Option<InsnBytes>) -> ExitInfo {
    let mut e = ExitInfo::with_info(ExitCode::VMEXIT_NPF, error_code, gpa);
    if cfg.features.decode_assists {
        e.insn_bytes = insn_bytes;
    }
    e
}

/// EXITINFO1 bit of a nested page fault on the final guest-physical address.
pub const NPF_FINAL_TRANSLATION: u64 = 1 << 32;
/// EXITINFO1 bit of a nested page fault while walking the guest page tables.
pub const NPF_GUEST_PAGE_TABLES: u64 = 1 << 33;
