//! The L1 runtime: VMX initialisation, the known-good VMCS, the exit handler
//! that records exits, the resume/skip/finish paths and the L2 guest's IDT.

use super::{at, layout, log, rec, var, vmr, vmw_reg};
use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{sel, GDT, IDT64, TSS64};
use iced_x86::code_asm::*;
use mmu::msr;
use vmx_model::controls::{EntryControls as En, ExitControls as Ex, ProcControls as P1};
use vmx_model::Field as F;

/// Labels of the runtime, usable from case code.
#[derive(Clone, Copy, Debug)]
pub struct VmxRt {
    /// One-time setup: CR0.NE, CR4.VMXE, IA32_FEATURE_CONTROL, revision
    /// identifiers, VMXON, EPT tables, the L2 IDT (call).
    pub init: Label,
    /// VMCLEAR and VMPTRLD [`layout::VMCS`], then the known-good VMCS (call).
    pub fresh_vmcs: Label,
    /// Writes the known-good field values into the current VMCS (call).
    pub load_defaults: Label,
    /// HOST_RIP: records the exit, then jumps to the case's exit code.
    pub exit_handler: Label,
    /// The default exit code: finish on VMCALL or a VM-entry failure, else
    /// skip the instruction and resume.
    pub default_exit: Label,
    /// VMRESUME (records a VMfail and finishes if it falls through).
    pub resume: Label,
    /// Advances the guest RIP by the exit instruction length, then resumes.
    pub skip: Label,
    /// Ends the case.
    pub finish: Label,
    /// The 256 L2 exception stubs (16 bytes apart): each loads R15 with
    /// 0xE00 + vector and R14 with the error code (or 0), then VMCALLs.
    pub guest_stubs: Label,
    table: Label,
}

/// L2's exception stubs report vector v as R15 = `GUEST_EXCEPTION + v`.
pub const GUEST_EXCEPTION: u64 = 0xe00;

/// The constant part of the known-good VMCS: a 64-bit guest on the kit's
/// GDT, TSS and a private IDT, and a 64-bit host on the kit's tables.
/// Control registers, EFER, controls and RIPs are written at run time.
fn defaults() -> Vec<(F, u64)> {
    let data = [0x10, 0, 0xffff_ffff, 0xc093];
    let mut v = vec![
        (F::GuestCsSelector, sel::CODE64 as u64),
        (F::GuestCsBase, 0),
        (F::GuestCsLimit, 0xffff_ffff),
        (F::GuestCsAccessRights, 0xa09b),
    ];
    for s in [
        [
            F::GuestSsSelector,
            F::GuestSsBase,
            F::GuestSsLimit,
            F::GuestSsAccessRights,
        ],
        [
            F::GuestDsSelector,
            F::GuestDsBase,
            F::GuestDsLimit,
            F::GuestDsAccessRights,
        ],
        [
            F::GuestEsSelector,
            F::GuestEsBase,
            F::GuestEsLimit,
            F::GuestEsAccessRights,
        ],
        [
            F::GuestFsSelector,
            F::GuestFsBase,
            F::GuestFsLimit,
            F::GuestFsAccessRights,
        ],
        [
            F::GuestGsSelector,
            F::GuestGsBase,
            F::GuestGsLimit,
            F::GuestGsAccessRights,
        ],
    ] {
        v.extend(s.into_iter().zip(data));
    }
    v.extend([
        (F::GuestLdtrSelector, 0),
        (F::GuestLdtrBase, 0),
        (F::GuestLdtrLimit, 0),
        (F::GuestLdtrAccessRights, 0x1_0000),
        (F::GuestTrSelector, sel::TSS64 as u64),
        (F::GuestTrBase, TSS64),
        (F::GuestTrLimit, 0x67),
        (F::GuestTrAccessRights, 0x8b),
        (F::GuestGdtrBase, GDT),
        (F::GuestGdtrLimit, 0x67),
        (F::GuestIdtrBase, layout::GUEST_IDT),
        (F::GuestIdtrLimit, 0xfff),
        (F::GuestDr7, 0x400),
        (F::GuestRflags, 2),
        (F::GuestRsp, layout::GUEST_STACK_TOP),
        (F::GuestPat, 0x0007_0406_0007_0406),
        (F::GuestDebugctl, 0),
        (F::GuestSysenterCs, 0),
        (F::GuestSysenterEsp, 0),
        (F::GuestSysenterEip, 0),
        (F::GuestInterruptibility, 0),
        (F::GuestActivityState, 0),
        (F::GuestPendingDebugExceptions, 0),
        (F::VmcsLinkPointer, u64::MAX),
        (F::HostCsSelector, sel::CODE64 as u64),
        (F::HostSsSelector, sel::DATA as u64),
        (F::HostDsSelector, sel::DATA as u64),
        (F::HostEsSelector, sel::DATA as u64),
        (F::HostFsSelector, sel::DATA as u64),
        (F::HostGsSelector, sel::DATA as u64),
        (F::HostTrSelector, sel::TSS64 as u64),
        (F::HostFsBase, 0),
        (F::HostGsBase, 0),
        (F::HostTrBase, TSS64),
        (F::HostGdtrBase, GDT),
        (F::HostIdtrBase, IDT64),
        (F::HostSysenterCs, 0),
        (F::HostSysenterEsp, 0),
        (F::HostSysenterEip, 0),
        (F::HostPat, 0x0007_0406_0007_0406),
        (F::HostRsp, layout::HOST_STACK_TOP),
        (F::ExceptionBitmap, 0),
        (F::PageFaultErrorCodeMask, 0),
        (F::PageFaultErrorCodeMatch, 0),
        (F::Cr3TargetCount, 0),
        (F::Cr0GuestHostMask, 0),
        (F::Cr4GuestHostMask, 0),
        (F::Cr0ReadShadow, 0),
        (F::Cr4ReadShadow, 0),
        (F::EntryInterruptionInfo, 0),
        (F::EntryMsrLoadCount, 0),
        (F::ExitMsrStoreCount, 0),
        (F::ExitMsrLoadCount, 0),
        (F::TscOffset, 0),
        (F::IoBitmapA, layout::IO_BITMAP_A),
        (F::IoBitmapB, layout::IO_BITMAP_B),
        (F::MsrBitmap, layout::MSR_BITMAP),
        (F::EptPointer, layout::EPTP),
        (F::VirtualProcessorId, 1),
    ]);
    v
}

/// The controls of the known-good VMCS, before the allowed settings of the
/// capability MSRs are applied: (capability MSR, field, bits wanted).
fn controls() -> [(u32, F, u64); 5] {
    let exit =
        Ex::HOST_ADDRESS_SPACE_SIZE | Ex::SAVE_EFER | Ex::LOAD_EFER | Ex::SAVE_PAT | Ex::LOAD_PAT;
    let entry = En::IA32E_MODE_GUEST | En::LOAD_EFER | En::LOAD_PAT;
    [
        (msr::IA32_VMX_TRUE_PINBASED_CTLS, F::PinBasedControls, 0),
        (
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            F::PrimaryProcBasedControls,
            P1::ACTIVATE_SECONDARY_CONTROLS.bits() as u64,
        ),
        (
            msr::IA32_VMX_PROCBASED_CTLS2,
            F::SecondaryProcBasedControls,
            0,
        ),
        (
            msr::IA32_VMX_TRUE_EXIT_CTLS,
            F::ExitControls,
            exit.bits() as u64,
        ),
        (
            msr::IA32_VMX_TRUE_ENTRY_CTLS,
            F::EntryControls,
            entry.bits() as u64,
        ),
    ]
}

impl VmxRt {
    /// Creates the labels.
    pub fn new(a: &mut Asm) -> Self {
        Self {
            init: a.label(),
            fresh_vmcs: a.label(),
            load_defaults: a.label(),
            exit_handler: a.label(),
            default_exit: a.label(),
            resume: a.label(),
            skip: a.label(),
            finish: a.label(),
            guest_stubs: a.label(),
            table: a.label(),
        }
    }

    /// Emits the runtime.
    pub fn emit(&mut self, a: &mut Asm) -> AsmResult {
        self.emit_init(a)?;
        self.emit_vmcs(a)?;
        self.emit_exit(a)?;
        self.emit_stubs(a)
    }

    fn emit_init(&mut self, a: &mut Asm) -> AsmResult {
        a.set(&mut self.init)?;
        // CR0.NE is fixed to 1 in VMX operation; CR4.VMXE enables VMXON.
        a.mov(rax, cr0)?;
        a.or(rax, 0x20i32)?;
        a.mov(cr0, rax)?;
        a.mov(rax, cr4)?;
        a.or(rax, 0x2000i32)?;
        a.mov(cr4, rax)?;
        // IA32_FEATURE_CONTROL: lock with VMX outside SMX, unless locked.
        let mut locked = a.label();
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.rdmsr()?;
        a.test(eax, 1i32)?;
        a.jnz(locked.l)?;
        a.mov(eax, 5i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.set(&mut locked)?;
        a.mov(ecx, msr::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.and(eax, 0x7fff_ffffi32)?;
        a.mov(at(layout::VARS + var::REVISION), rax)?;
        for r in [layout::VMXON, layout::VMCS, layout::VMCS2] {
            a.mov(dword_ptr(r as u32 as u64), eax)?;
        }
        // Identity EPT: PML4 -> PDPT -> 4 PDs of 2-MiB RWX write-back pages.
        a.mov(rax, layout::EPT_PDPT | 7)?;
        a.mov(at(layout::EPT_PML4), rax)?;
        for i in 0..4u64 {
            a.mov(rax, (layout::EPT_PD + 0x1000 * i) | 7)?;
            a.mov(at(layout::EPT_PDPT + 8 * i), rax)?;
        }
        let mut fill = a.label();
        a.mov(rdi, layout::EPT_PD)?;
        a.mov(rax, 0xb7u64)?;
        a.mov(ecx, 2048i32)?;
        a.set(&mut fill)?;
        a.mov(qword_ptr(rdi), rax)?;
        a.add(rdi, 8i32)?;
        a.add(rax, 0x20_0000i32)?;
        a.dec(ecx)?;
        a.jnz(fill.l)?;
        // The L2 IDT: 256 interrupt gates to the stubs, DPL 3 for 3, 4, 0x80.
        let mut gate = a.label();
        a.mov(rdi, layout::GUEST_IDT)?;
        a.lea(rsi, ptr(self.guest_stubs.l))?;
        a.xor(ecx, ecx)?;
        a.set(&mut gate)?;
        a.mov(rax, rsi)?;
        a.and(eax, 0xffffi32)?;
        a.mov(rdx, ((sel::CODE64 as u64) << 16) | (0x8eu64 << 40))?;
        a.or(rax, rdx)?;
        a.mov(rdx, rsi)?;
        a.shr(rdx, 16i32)?;
        a.and(edx, 0xffffi32)?;
        a.shl(rdx, 48i32)?;
        a.or(rax, rdx)?;
        a.mov(qword_ptr(rdi), rax)?;
        a.mov(rax, rsi)?;
        a.shr(rax, 32i32)?;
        a.mov(qword_ptr(rdi + 8), rax)?;
        a.add(rdi, 16i32)?;
        a.add(rsi, 16i32)?;
        a.inc(ecx)?;
        a.cmp(ecx, 256i32)?;
        a.jb(gate.l)?;
        a.or(
            byte_ptr((layout::GUEST_IDT + 3 * 16 + 5) as u32 as u64),
            0x60i32,
        )?;
        a.or(
            byte_ptr((layout::GUEST_IDT + 4 * 16 + 5) as u32 as u64),
            0x60i32,
        )?;
        a.mov(rax, layout::VMXON)?;
        a.mov(at(layout::SCRATCH + 0xff0), rax)?;
        a.vmxon(at(layout::SCRATCH + 0xff0))?;
        a.ret()
    }

    fn emit_vmcs(&mut self, a: &mut Asm) -> AsmResult {
        a.set(&mut self.fresh_vmcs)?;
        // Bitmaps start empty in every case.
        a.cld()?;
        a.mov(rdi, layout::IO_BITMAP_A)?;
        a.xor(eax, eax)?;
        a.mov(ecx, 3 * 512i32)?;
        a.rep().stosq()?;
        a.mov(rax, layout::VMCS)?;
        a.mov(at(layout::SCRATCH + 0xff8), rax)?;
        a.vmclear(at(layout::SCRATCH + 0xff8))?;
        // Every field starts at 0: no case sees the one before it. (Writing
        // an inactive VMCS region is allowed; this relies on nestemu's
        // region layout only for the zeros.)
        a.mov(rdi, layout::VMCS)?;
        a.xor(eax, eax)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()?;
        a.mov(rax, at(layout::VARS + var::REVISION))?;
        a.mov(dword_ptr(layout::VMCS as u32 as u64), eax)?;
        a.vmptrld(at(layout::SCRATCH + 0xff8))?;
        a.set(&mut self.load_defaults)?;
        let table = defaults();
        let mut lp = a.label();
        a.lea(rsi, ptr(self.table.l))?;
        a.mov(ecx, table.len() as u32)?;
        a.set(&mut lp)?;
        a.mov(rbx, qword_ptr(rsi))?;
        a.mov(rax, qword_ptr(rsi + 8))?;
        a.vmwrite(rbx, rax)?;
        a.add(rsi, 16i32)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        for (field, from) in [
            (F::HostCr0, 0),
            (F::GuestCr0, 0),
            (F::HostCr3, 3),
            (F::GuestCr3, 3),
            (F::HostCr4, 4),
            (F::GuestCr4, 4),
        ] {
            match from {
                0 => a.mov(rax, cr0)?,
                3 => a.mov(rax, cr3)?,
                _ => a.mov(rax, cr4)?,
            }
            vmw_reg(a, field, rax)?;
        }
        a.mov(ecx, msr::IA32_EFER)?;
        a.rdmsr()?;
        a.shl(rdx, 32i32)?;
        a.or(rax, rdx)?;
        vmw_reg(a, F::HostEfer, rax)?;
        vmw_reg(a, F::GuestEfer, rax)?;
        a.lea(rax, ptr(self.exit_handler.l))?;
        vmw_reg(a, F::HostRip, rax)?;
        for (cap, field, want) in controls() {
            // (want | allowed-0 bits) & allowed-1 bits.
            a.mov(ecx, cap)?;
            a.rdmsr()?;
            a.mov(rcx, want)?;
            a.or(ecx, eax)?;
            a.and(ecx, edx)?;
            vmw_reg(a, field, rcx)?;
        }
        a.ret()?;
        a.set(&mut self.table)?;
        for (f, v) in table {
            a.dq(&[f.encoding() as u64, v])?;
        }
        Ok(())
    }

    fn emit_exit(&mut self, a: &mut Asm) -> AsmResult {
        let regs = [
            rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
        ];
        a.set(&mut self.exit_handler)?;
        for (n, r) in regs.iter().enumerate() {
            if n != 4 {
                a.mov(at(layout::VARS + var::EXIT_GPRS + 8 * n as u64), *r)?;
            }
        }
        a.cld()?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        a.mov(qword_ptr(rbx + rec::ENTERED as i32), 1i32)?;
        a.lea(rdi, qword_ptr(rbx + rec::GPRS as i32))?;
        a.mov(rsi, layout::VARS + var::EXIT_GPRS)?;
        a.mov(ecx, 16i32)?;
        a.rep().movsq()?;
        // Every exit counts; the first MAX_EXITS - 1 have their own log
        // entry, the last entry holds the latest exit; past the case's limit
        // the case ends (a guest stuck in an exit loop).
        let mut overflow = a.label();
        a.mov(rcx, qword_ptr(rbx + rec::EXITS as i32))?;
        a.cmp(rcx, at(layout::VARS + var::EXIT_LIMIT))?;
        a.jae(overflow.l)?;
        a.inc(qword_ptr(rbx + rec::EXITS as i32))?;
        a.mov(edx, (rec::MAX_EXITS - 1) as i32)?;
        a.cmp(rcx, rdx)?;
        a.cmova(rcx, rdx)?;
        a.imul_3(rdi, rcx, log::SIZE as i32)?;
        a.lea(rdi, qword_ptr(rdi + rbx + rec::LOG as i32))?;
        for (slot, f) in log::FIELDS.iter().enumerate() {
            a.mov(eax, f.encoding())?;
            a.vmread(qword_ptr(rdi + 8 * slot as i32), rax)?;
        }
        a.jmp(qword_ptr((layout::VARS + var::HANDLER) as u32 as u64))?;
        a.set(&mut overflow)?;
        a.mov(qword_ptr(rbx + rec::STATUS as i32), 2i32)?;
        a.jmp(self.finish.l)?;
        // Default: finish on VMCALL and entry failures, else skip.
        a.set(&mut self.default_exit)?;
        vmr(a, rax, F::ExitReason)?;
        a.cmp(eax, 18i32)?;
        a.je(self.finish.l)?;
        a.test(eax, eax)?;
        a.js(self.finish.l)?;
        a.set(&mut self.skip)?;
        vmr(a, rax, F::GuestRip)?;
        vmr(a, rcx, F::ExitInstructionLength)?;
        a.add(rax, rcx)?;
        vmw_reg(a, F::GuestRip, rax)?;
        a.set(&mut self.resume)?;
        // The guest's registers are live across VM entries: restore them
        // (cases change L2 registers by writing `var::EXIT_GPRS`).
        for (n, r) in regs.iter().enumerate() {
            if n != 4 {
                a.mov(*r, at(layout::VARS + var::EXIT_GPRS + 8 * n as u64))?;
            }
        }
        a.vmresume()?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        a.pushfq()?;
        a.pop(qword_ptr(rbx + rec::RESUME_RFLAGS as i32))?;
        vmr(a, rax, F::VmInstructionError)?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        a.mov(qword_ptr(rbx + rec::RESUME_ERROR as i32), rax)?;
        a.mov(qword_ptr(rbx + rec::STATUS as i32), 3i32)?;
        a.jmp(qword_ptr((layout::VARS + var::DONE) as u32 as u64))?;
        a.set(&mut self.finish)?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        let mut keep = a.label();
        a.cmp(qword_ptr(rbx + rec::STATUS as i32), 0i32)?;
        a.jne(keep.l)?;
        a.mov(qword_ptr(rbx + rec::STATUS as i32), 1i32)?;
        a.set(&mut keep)?;
        a.mov(rsp, layout::HOST_STACK_TOP)?;
        a.jmp(qword_ptr((layout::VARS + var::DONE) as u32 as u64))
    }

    fn emit_stubs(&mut self, a: &mut Asm) -> AsmResult {
        a.set(&mut self.guest_stubs)?;
        for v in 0..=255u8 {
            // mov r15d, imm32 (6 bytes); pop r14 or xor r14d, r14d (2-3);
            // vmcall (3); padding.
            let mut b = vec![0x41, 0xbf];
            b.extend_from_slice(&(GUEST_EXCEPTION as u32 + v as u32).to_le_bytes());
            if crate::rt64::ERROR_CODE_VECTORS.contains(&v) {
                b.extend_from_slice(&[0x41, 0x5e]);
            } else {
                b.extend_from_slice(&[0x45, 0x31, 0xf6]);
            }
            b.extend_from_slice(&[0x0f, 0x01, 0xc1]);
            b.resize(16, 0xcc);
            a.db(&b)?;
        }
        Ok(())
    }
}
