//! `vmcs`: random VMCS contents before VMLAUNCH and VMRESUME, two ways.
//!
//! - **Model**: `vmx_model::testkit`'s known-good VMCS (under the `intel`,
//!   `everything` or first-generation capabilities) with random fields
//!   changed and random bytes in the structures it points at, then
//!   VMLAUNCH or VMRESUME through `vmx_model::insn`.
//! - **Machine**: an L1 hypervisor kit program, built once, whose case
//!   applies a table of VMCS writes from guest memory before VMLAUNCH (and
//!   optionally a second table at the first exit before VMRESUME) and runs
//!   generated L2 code from a slot. Per input the tables and the slot are
//!   written into the image; the machine runs under an instruction limit.
//!
//! Defined: VMfailInvalid, VMfailValid with an error number of SDM Vol. 3C
//! 31.4, a VM-entry failure exit (33, 34, or 41 for a machine-check event),
//! VM entry followed by exits whose basic reasons are in SDM Vol. 3D
//! appendix C, and a machine `Stop`.

use super::insn::{emit_slot, find_slot};
use super::{code, stop_outcome};
use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use guestkit::vmx::{layout, VmxCase, VmxRecord, VmxRt, VmxSuite};
use guestkit::Asm;
use iced_x86::code_asm::*;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig};
use vmx_model::exit::ExitReason;
use vmx_model::insn::LaunchOutcome;
use vmx_model::mem::PhysMemExt;
use vmx_model::testkit;
use vmx_model::vmcs::{Kind, FIELDS};
use vmx_model::{Field, VmInstructionError, VmxCaps, VmxFeatures};

/// Where the machine-level write tables live (guest-physical, inside the
/// kit's 64-MiB machine, outside every structure the runtime uses).
const TABLE_LAUNCH: u64 = 0x190_0000;
/// The table applied at the first exit, before VMRESUME.
const TABLE_RESUME: u64 = 0x190_4000;
/// Entries per table.
const TABLE_MAX: usize = 48;
/// An entry's operation: the low byte of the third qword.
const OP_SET: u64 = 0;
const OP_XOR: u64 = 1;
const OP_OR: u64 = 2;
const OP_ANDN: u64 = 3;
/// Store the value at the physical address in the first qword.
const OP_POKE: u64 = 4;
/// Bytes of the L2 code slot.
const SLOT: usize = 128;
/// Instructions per machine run.
const MAX_INSNS: u64 = 300_000;

/// Emits the loop that applies the write table at `table` to the current
/// VMCS: entries (encoding, value, op) of three qwords, ended by an
/// encoding of all ones. Clobbers RAX, RBX, RCX, RDX, RSI.
fn emit_apply(a: &mut Asm, table: u64) -> Result<(), IcedError> {
    let mut lp = a.label();
    let mut done = a.label();
    let mut xor = a.label();
    let mut or = a.label();
    let mut andn = a.label();
    let mut poke = a.label();
    let mut write = a.label();
    let mut next = a.label();
    a.mov(rsi, table)?;
    a.set(&mut lp)?;
    a.mov(rbx, qword_ptr(rsi))?;
    a.cmp(rbx, -1i32)?;
    a.je(done.l)?;
    a.mov(rcx, qword_ptr(rsi + 8))?;
    a.mov(rdx, qword_ptr(rsi + 16))?;
    a.cmp(rdx, OP_POKE as i32)?;
    a.je(poke.l)?;
    a.xor(eax, eax)?;
    a.vmread(rax, rbx)?;
    a.cmp(rdx, OP_XOR as i32)?;
    a.je(xor.l)?;
    a.cmp(rdx, OP_OR as i32)?;
    a.je(or.l)?;
    a.cmp(rdx, OP_ANDN as i32)?;
    a.je(andn.l)?;
    a.mov(rax, rcx)?;
    a.jmp(write.l)?;
    a.set(&mut xor)?;
    a.xor(rax, rcx)?;
    a.jmp(write.l)?;
    a.set(&mut or)?;
    a.or(rax, rcx)?;
    a.jmp(write.l)?;
    a.set(&mut andn)?;
    a.not(rcx)?;
    a.and(rax, rcx)?;
    a.set(&mut write)?;
    a.vmwrite(rbx, rax)?;
    a.jmp(next.l)?;
    a.set(&mut poke)?;
    a.mov(qword_ptr(rbx), rcx)?;
    a.set(&mut next)?;
    a.add(rsi, 24i32)?;
    a.jmp(lp.l)?;
    a.set(&mut done)
}

/// The L1 program: one case that applies the launch table, launches the
/// L2 slot, and at the first exit applies the resume table.
fn program() -> guestkit::Program {
    let mut s = VmxSuite::new();
    let flag = layout::VARS + guestkit::vmx::var::USER;
    s.push(
        VmxCase::guest("fuzz", |a, _| emit_slot(a, SLOT))
            .setup(move |a, _| {
                a.mov(rax, flag)?;
                a.mov(qword_ptr(rax), 0i32)?;
                emit_apply(a, TABLE_LAUNCH)
            })
            .on_exit(move |a, rt: &VmxRt| {
                let mut later = a.label();
                a.mov(rax, flag)?;
                a.cmp(qword_ptr(rax), 0i32)?;
                a.jne(later.l)?;
                a.mov(qword_ptr(rax), 1i32)?;
                emit_apply(a, TABLE_RESUME)?;
                a.jmp(rt.skip.l)?;
                a.set(&mut later)?;
                a.jmp(rt.default_exit.l)
            })
            .max_exits(8),
    );
    s.into_program()
}

/// A field to write: usually a guest-state or control field, sometimes a
/// host-state or read-only one, rarely an encoding outside the table.
fn field_encoding(src: &mut Source) -> u64 {
    match src.below(32) {
        0 => src.u32() as u64,
        1..=4 => {
            let host: Vec<Field> = FIELDS
                .iter()
                .filter(|i| matches!(i.kind, Kind::Host | Kind::ExitInfo))
                .map(|i| i.field)
                .collect();
            src.pick(&host).encoding() as u64
        }
        _ => src.pick(Field::ALL).encoding() as u64,
    }
}

/// A field value and how to combine it.
fn field_change(src: &mut Source) -> (u64, u64) {
    match src.below(8) {
        0..=2 => (OP_XOR, 1u64 << src.below(64)),
        3 => (OP_OR, src.interesting_u64()),
        4 => (OP_ANDN, src.interesting_u64()),
        5 => (OP_SET, src.u8() as u64),
        _ => (OP_SET, src.interesting_u64()),
    }
}

/// Decodes a write table: field changes, pokes into the VMX structures
/// (bitmaps, MSR areas, virtual-APIC page, EPT tables), and (usually) the
/// preemption timer so that a wild guest ends.
fn table(src: &mut Source, timer: bool) -> Vec<[u64; 3]> {
    let mut t = Vec::new();
    for _ in 0..src.below(TABLE_MAX as u64 - 2) {
        if src.chance(1, 8) {
            // Bitmaps, virtual-APIC page and MSR areas, or the EPT
            // tables; not the runtime's own variables.
            let at = if src.bool() {
                layout::IO_BITMAP_A + 8 * src.below((layout::SCRATCH - layout::IO_BITMAP_A) / 8)
            } else {
                layout::EPT_PML4 + 8 * src.below((layout::EPT_PT + 0x1000 - layout::EPT_PML4) / 8)
            };
            t.push([at, src.interesting_u64(), OP_POKE]);
        } else {
            let enc = field_encoding(src);
            let (op, v) = field_change(src);
            t.push([enc, v, op]);
        }
    }
    if timer {
        use vmx_model::controls::PinControls as Pin;
        t.push([
            Field::PinBasedControls.encoding() as u64,
            Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64,
            OP_OR,
        ]);
        t.push([Field::PreemptionTimerValue.encoding() as u64, 200, OP_SET]);
    }
    t.push([u64::MAX, 0, 0]);
    t
}

/// A table's bytes.
fn encode(t: &[[u64; 3]]) -> Vec<u8> {
    t.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
}

/// The vmcs target.
#[derive(Debug)]
pub struct Vmcs {
    image: Vec<u8>,
    slot: usize,
}

impl Vmcs {
    /// Builds the L1 program.
    pub fn new() -> Self {
        let built = program().build().expect("the VMCS fuzz program assembles");
        let slot = find_slot(&built.image).expect("the slot is in the image");
        Self {
            image: built.image,
            slot,
        }
    }

    fn model(&self, src: &mut Source) -> Verdict {
        let features = match src.below(4) {
            0 => VmxFeatures::everything(),
            1 => VmxFeatures::first_generation(),
            _ => VmxFeatures::intel(),
        };
        let mut m = testkit::Machine::new(VmxCaps::new(features));
        for _ in 0..src.below(24) {
            if src.chance(1, 6) {
                let at = src.below(testkit::addr::MEM_SIZE as u64 / 8) * 8;
                m.mem
                    .write_u64(at, src.interesting_u64(), vmx_model::Access::Vmcs);
                continue;
            }
            let f = src.pick(Field::ALL);
            match field_change(src) {
                (OP_XOR, v) => {
                    let x = m.get(f);
                    m.set(f, x ^ v);
                }
                (OP_OR, v) => {
                    m.or(f, v);
                }
                (OP_ANDN, v) => {
                    m.clear_bits(f, v);
                }
                (_, v) => {
                    m.set(f, v);
                }
            }
        }
        let resume = src.chance(1, 4);
        let out = if resume { m.resume() } else { m.launch() };
        let op = if resume {
            "model VMRESUME"
        } else {
            "model VMLAUNCH"
        };
        let (label, signal) = match &out {
            LaunchOutcome::Fault(e) => (format!("{op}: fault {e:?}"), 0),
            LaunchOutcome::Exit(r) => (format!("{op}: exit {}", r.number()), 0),
            LaunchOutcome::FailInvalid => (format!("{op}: VMfailInvalid"), 0),
            LaunchOutcome::FailValid(e, check) => (
                format!("{op}: VMfailValid({})", e.number()),
                check.map_or(0, |c| c.id as u64 + 1),
            ),
            LaunchOutcome::Entered(_) => (format!("{op}: entered"), 0),
            LaunchOutcome::EntryFailed(f) => {
                let n = f.reason.number();
                if !matches!(n, 33 | 34 | 41) {
                    return Err(format!("VM-entry failure with reason {n}"));
                }
                (
                    format!(
                        "{op}: entry failure {n}{}",
                        if f.host.is_err() { " + VMX abort" } else { "" }
                    ),
                    f.check.id as u64 + 1,
                )
            }
        };
        Ok(Outcome::new(label).with_signal(signal))
    }

    fn machine(&self, src: &mut Source) -> Verdict {
        let mut m = self.prepare(src)?;
        let mut resume_table = vec![0u8; TABLE_MAX * 24];
        m.peek_phys(TABLE_RESUME, &mut resume_table);
        let stop = super::run_bounded(&mut m);
        let mut o = stop_outcome(&m, stop.as_ref());
        let mut b = vec![0u8; layout::RECORD_SIZE as usize];
        m.peek_phys(layout::RECORDS, &mut b);
        let r = VmxRecord::parse(&b);
        // With "VMWRITE to any supported field" L1 may have written the
        // exit-reason field itself at the first exit (the resume table, as
        // generated or as L2 left it in memory): then the field is L1's
        // value, not the machine's, and only the machine's own count of
        // exits by name is evidence.
        let mut after = vec![0u8; resume_table.len()];
        m.peek_phys(TABLE_RESUME, &mut after);
        let reason_enc = Field::ExitReason.encoding() as u64;
        let l1_may_write_reason = after != resume_table
            || resume_table
                .chunks(24)
                .any(|e| u64::from_le_bytes(e[..8].try_into().expect("8 bytes")) == reason_enc);
        let last_reason = m
            .virt
            .vmx
            .state
            .current
            .as_ref()
            .filter(|_| !l1_may_write_reason)
            .map(|c| c.vmcs.get(vmx_model::vmcs::Field::ExitReason));
        for name in m.stats.vmexits.by_reason.keys() {
            if !(0..=u16::MAX)
                .filter_map(ExitReason::from_number)
                .any(|r| r.name() == name)
            {
                return Err(format!("the machine counted an exit named {name:?}"));
            }
        }
        let what = classify(&r, m.stats.vmexits.total, last_reason)?;
        o.signal = o.signal << 32 ^ exits_signal(&r);
        o.label = format!("machine: {what}; {}", o.label);
        Ok(o)
    }

    /// The L1 machine for an input, loaded and not yet run (also the
    /// starting point of `snapshot` inputs).
    pub fn prepare(&self, src: &mut Source) -> Result<Machine, String> {
        let timer = src.chance(7, 8);
        let launch = table(src, timer);
        let resume = if src.bool() {
            table(src, false)
        } else {
            vec![[u64::MAX, 0, 0]]
        };
        let l2 = if src.chance(1, 4) {
            vec![0x0f, 0x01, 0xc1] // vmcall
        } else {
            let mut c = vec![0x0f, 0x01, 0xc1];
            c.extend(code::stream(src, 64, SLOT - 3));
            c
        };
        let mut img = self.image.clone();
        img[self.slot..self.slot + l2.len()].copy_from_slice(&l2);
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 64 << 20,
            max_insns: Some(MAX_INSNS),
            ..Default::default()
        });
        multiboot::boot(&mut m, &img, "fuzz", &[])
            .map_err(|e| format!("the kit image does not load: {e}"))?;
        m.load_phys(TABLE_LAUNCH, &encode(&launch));
        m.load_phys(TABLE_RESUME, &encode(&resume));
        Ok(m)
    }
}

impl Default for Vmcs {
    fn default() -> Self {
        Self::new()
    }
}

/// The flags of a VMfail: CF (VMfailInvalid) or ZF (VMfailValid).
const CF: u64 = 1;
const ZF: u64 = 1 << 6;

fn defined_error(n: u64) -> Result<(), String> {
    match u32::try_from(n)
        .ok()
        .and_then(VmInstructionError::from_number)
    {
        Some(_) => Ok(()),
        None => Err(format!("VMfailValid with undefined error number {n}")),
    }
}

/// Checks a VM exit reason: a basic reason the SDM defines (Vol. 3C
/// appendix C), entry failures only 33, 34 or 41, no reserved bit.
fn defined_reason(reason: u64) -> Result<(), String> {
    let basic = (reason & 0xffff) as u16;
    if reason & (1 << 31) != 0 {
        if !matches!(basic, 33 | 34 | 41) {
            return Err(format!("VM-entry failure with basic reason {basic}"));
        }
    } else if ExitReason::from_number(basic).is_none() {
        return Err(format!("VM exit with undefined basic reason {basic}"));
    }
    if reason >> 32 != 0 || reason & 0x7fff_0000 & !(1 << 27 | 1 << 28 | 1 << 29) != 0 {
        return Err(format!("exit reason {reason:#x} sets reserved bits"));
    }
    Ok(())
}

/// Names what the L1 saw, or says why it is not architectural.
///
/// L2 shares L1's memory and its generated code may overwrite the record,
/// so the record is evidence only while L2 never ran (`exits == 0`, from
/// the machine's own count): then the VMLAUNCH result is checked. Once L2
/// ran, the last exit's reason is read from the current VMCS, which the
/// machine holds outside guest memory (`last_reason`).
fn classify(r: &VmxRecord, exits: u64, last_reason: Option<u64>) -> Result<String, String> {
    if exits > 0 {
        if let Some(reason) = last_reason {
            defined_reason(reason)?;
        }
    }
    let launch = if exits > 0 {
        match r.exits.first() {
            Some(e) if e.reason & (1 << 31) != 0 => format!("entry failure {}", e.reason & 0xffff),
            Some(e) => format!("entered, first exit {}", e.reason & 0xffff),
            None => "entered".into(),
        }
    } else if r.launch_rflags & ZF != 0 {
        defined_error(r.launch_error)?;
        format!("VMLAUNCH VMfailValid({})", r.launch_error)
    } else if r.launch_rflags & CF != 0 {
        "VMLAUNCH VMfailInvalid".into()
    } else {
        "L1 did not finish the case".into()
    };
    let resume = match r.status {
        3 if r.resume_rflags & ZF != 0 => format!(", VMRESUME VMfailValid({})", r.resume_error),
        3 => ", VMRESUME VMfailInvalid".into(),
        2 => ", exit limit".into(),
        _ => String::new(),
    };
    Ok(format!("{launch}{resume}"))
}

fn exits_signal(r: &VmxRecord) -> u64 {
    r.exits
        .iter()
        .fold(r.status, |h, e| h.wrapping_mul(131).wrapping_add(e.reason))
}

impl Target for Vmcs {
    fn name(&self) -> &'static str {
        "vmcs"
    }

    fn max_len(&self) -> usize {
        1024
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        if src.bool() {
            self.model(&mut src)
        } else {
            self.machine(&mut src)
        }
    }
}
