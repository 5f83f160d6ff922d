//! The interpreter: fetch, decode once into cached blocks, dispatch.
//!
//! [`handler_for`] is the one dispatch table: it maps a decoded instruction to
//! the function implementing it, once, when the block is decoded. Handlers live
//! in a file per instruction family and return [`Flow`]: `Ok` to retire, or an
//! [`Event`] (fault, trap, stop) for the machine to deliver.

pub mod arith;
pub mod bitops;
pub mod cache;
pub mod control;
pub mod data;
pub mod far;
pub mod fast;
pub mod features;
pub mod flagops;
pub mod muldiv;
pub mod operand;
pub mod shift;
pub mod sse;
pub mod stack;
pub mod string;
pub mod system;
pub mod task;
pub mod x87;
pub mod xsave;

use crate::cost::InsnClass;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use cache::{Block, DecodedInsn, MAX_BLOCK};
use fast::Op;
use iced_x86::{Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};
use mmu::SegReg;

/// An instruction's semantics.
pub type Handler = fn(&mut Machine, &Instruction) -> Flow;

/// A block to execute: cached, or a single instruction decoded for this one
/// execution (it crosses a page boundary or does not come from RAM).
pub enum BlockRef {
    /// A slot of the code cache.
    Cached(u32),
    /// One instruction, not cached.
    Transient(Op),
}

/// #UD: the instruction is invalid or its feature is not advertised.
pub fn invalid_opcode(_: &mut Machine, _: &Instruction) -> Flow {
    Err(Event::ud())
}

/// #GP(0): the encoding exceeds 15 bytes (SDM Vol. 2A 2.3.11).
fn too_long(_: &mut Machine, _: &Instruction) -> Flow {
    Err(Event::gp0())
}

/// An advertised instruction nestemu does not implement yet: stop, naming it.
#[cold]
pub fn unimplemented_insn(m: &mut Machine, i: &Instruction) -> Flow {
    let cs = m.cpu.seg(SegReg::Cs).base;
    Err(Event::unimplemented(
        format!("{:?} ({:?})", i.mnemonic(), i.code()),
        cs.wrapping_add(m.cpu.rip),
    ))
}

fn uses_cr_or_dr(i: &Instruction) -> Option<bool> {
    for n in 0..i.op_count() {
        if i.op_kind(n) == OpKind::Register {
            let r = i.op_register(n);
            if r.is_cr() {
                return Some(true);
            }
            if r.is_dr() {
                return Some(false);
            }
        }
    }
    None
}

fn uses_sreg(i: &Instruction) -> bool {
    (0..i.op_count())
        .any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_segment_register())
}

/// The dispatch table: the handler and cost class of a decoded instruction.
pub fn handler_for(m: &Machine, i: &Instruction) -> (Handler, InsnClass) {
    use InsnClass as K;
    use Mnemonic as M;
    if i.is_invalid() {
        return (
            if i.len() >= 15 {
                too_long
            } else {
                invalid_opcode
            },
            K::Simple,
        );
    }
    if !features::available(&m.config.model, i.cpuid_features()) {
        return (invalid_opcode, K::Simple);
    }
    if let Some(h) = crate::virt::handler_for(m, i) {
        return h;
    }
    if let Some(h) = x87::handler_for(m, i) {
        return h;
    }
    if let Some(h) = sse::handler_for(m, i) {
        return h;
    }
    if let Some(h) = xsave::handler_for(i) {
        return h;
    }
    let h: (Handler, InsnClass) = match i.mnemonic() {
        M::Mov => match uses_cr_or_dr(i) {
            Some(true) => (system::mov_cr, K::System),
            Some(false) => (system::mov_dr, K::System),
            None if uses_sreg(i) => (system::mov_sreg, K::System),
            None => (data::mov, K::Simple),
        },
        M::Movzx => (data::movzx, K::Simple),
        M::Movsx | M::Movsxd => (data::movsx, K::Simple),
        M::Lea => (data::lea, K::Simple),
        M::Xchg => (data::xchg, K::Simple),
        M::Bswap => (data::bswap, K::Simple),
        M::Movbe => (data::movbe, K::Simple),
        M::Cbw | M::Cwde | M::Cdqe => (data::cbw, K::Simple),
        M::Cwd | M::Cdq | M::Cqo => (data::cwd, K::Simple),
        M::Xlatb => (data::xlat, K::Simple),
        M::Nop | M::Fnop | M::Prefetch | M::Reservednop => (data::nop, K::Simple),
        M::Pause => (data::pause, K::Simple),
        M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 | M::Prefetchw => {
            (data::nop, K::Simple)
        }
        M::Lfence | M::Mfence | M::Sfence => (data::nop, K::Simple),
        M::Lahf => (flagops::lahf, K::Simple),
        M::Sahf => (flagops::sahf, K::Simple),
        M::Cmova
        | M::Cmovae
        | M::Cmovb
        | M::Cmovbe
        | M::Cmove
        | M::Cmovg
        | M::Cmovge
        | M::Cmovl
        | M::Cmovle
        | M::Cmovne
        | M::Cmovno
        | M::Cmovnp
        | M::Cmovns
        | M::Cmovo
        | M::Cmovp
        | M::Cmovs => (data::cmovcc, K::Simple),
        M::Seta
        | M::Setae
        | M::Setb
        | M::Setbe
        | M::Sete
        | M::Setg
        | M::Setge
        | M::Setl
        | M::Setle
        | M::Setne
        | M::Setno
        | M::Setnp
        | M::Setns
        | M::Seto
        | M::Setp
        | M::Sets => (data::setcc, K::Simple),
        M::Add => (arith::add, K::Simple),
        M::Adc => (arith::adc, K::Simple),
        M::Sub => (arith::sub, K::Simple),
        M::Sbb => (arith::sbb, K::Simple),
        M::Cmp => (arith::cmp, K::Simple),
        M::And => (arith::and, K::Simple),
        M::Or => (arith::or, K::Simple),
        M::Xor => (arith::xor, K::Simple),
        M::Test => (arith::test, K::Simple),
        M::Not => (arith::not, K::Simple),
        M::Neg => (arith::neg, K::Simple),
        M::Inc => (arith::inc, K::Simple),
        M::Dec => (arith::dec, K::Simple),
        M::Xadd => (arith::xadd, K::Simple),
        M::Cmpxchg => (arith::cmpxchg, K::Simple),
        M::Cmpxchg8b | M::Cmpxchg16b => (arith::cmpxchg8b16b, K::Simple),
        M::Adcx => (arith::adcx, K::Simple),
        M::Adox => (arith::adox, K::Simple),
        M::Daa => (arith::daa, K::Simple),
        M::Das => (arith::das, K::Simple),
        M::Aaa => (arith::aaa, K::Simple),
        M::Aas => (arith::aas, K::Simple),
        M::Aam => (arith::aam, K::Divide),
        M::Aad => (arith::aad, K::Simple),
        M::Shl | M::Sal => (shift::shl, K::Simple),
        M::Shr => (shift::shr, K::Simple),
        M::Sar => (shift::sar, K::Simple),
        M::Rol => (shift::rol, K::Simple),
        M::Ror => (shift::ror, K::Simple),
        M::Rcl => (shift::rcl, K::Simple),
        M::Rcr => (shift::rcr, K::Simple),
        M::Shld => (shift::shld, K::Simple),
        M::Shrd => (shift::shrd, K::Simple),
        M::Sarx | M::Shlx | M::Shrx => (shift::shiftx, K::Simple),
        M::Rorx => (shift::rorx, K::Simple),
        M::Mul => (muldiv::mul, K::Multiply),
        M::Imul => (muldiv::imul, K::Multiply),
        M::Div => (muldiv::div, K::Divide),
        M::Idiv => (muldiv::idiv, K::Divide),
        M::Mulx => (muldiv::mulx, K::Multiply),
        M::Bt | M::Bts | M::Btr | M::Btc => (bitops::bt, K::Simple),
        M::Bsf | M::Bsr => (bitops::bsf_bsr, K::Simple),
        M::Popcnt => (bitops::popcnt, K::Simple),
        M::Lzcnt | M::Tzcnt => (bitops::lzcnt_tzcnt, K::Simple),
        M::Andn => (bitops::andn, K::Simple),
        M::Bextr => (bitops::bextr, K::Simple),
        M::Blsi | M::Blsmsk | M::Blsr => (bitops::bls, K::Simple),
        M::Bzhi => (bitops::bzhi, K::Simple),
        M::Pdep | M::Pext => (bitops::pdep_pext, K::Simple),
        M::Push => match i.op_kind(0) {
            OpKind::Register if i.op0_register().is_segment_register() => {
                (stack::push_sreg, K::Simple)
            }
            _ => (stack::push, K::Simple),
        },
        M::Pop => match i.op_kind(0) {
            OpKind::Register if i.op0_register().is_segment_register() => {
                (system::pop_sreg, K::System)
            }
            _ => (stack::pop, K::Simple),
        },
        M::Pusha | M::Pushad => (stack::pusha, K::Simple),
        M::Popa | M::Popad => (stack::popa, K::Simple),
        M::Pushf | M::Pushfd | M::Pushfq => (stack::pushf, K::Simple),
        M::Popf | M::Popfd | M::Popfq => (stack::popf, K::Simple),
        M::Enter => (stack::enter, K::Simple),
        M::Leave => (stack::leave, K::Simple),
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std => (flagops::flag_op, K::Simple),
        M::Cli => (flagops::cli, K::Simple),
        M::Sti => (flagops::sti, K::Simple),
        M::Jmp => match i.op_kind(0) {
            OpKind::FarBranch16 | OpKind::FarBranch32 => (control::jmp_far, K::System),
            OpKind::Memory if i.flow_control() == FlowControl::IndirectBranch && is_far_mem(i) => {
                (control::jmp_far, K::System)
            }
            _ => (control::jmp, K::Simple),
        },
        M::Call => match i.op_kind(0) {
            OpKind::FarBranch16 | OpKind::FarBranch32 => (control::call_far, K::System),
            OpKind::Memory if is_far_mem(i) => (control::call_far, K::System),
            _ => (control::call, K::Simple),
        },
        M::Ret => (control::ret, K::Simple),
        M::Retf => (control::retf, K::System),
        M::Ja
        | M::Jae
        | M::Jb
        | M::Jbe
        | M::Je
        | M::Jg
        | M::Jge
        | M::Jl
        | M::Jle
        | M::Jne
        | M::Jno
        | M::Jnp
        | M::Jns
        | M::Jo
        | M::Jp
        | M::Js => (control::jcc, K::Simple),
        M::Jcxz | M::Jecxz | M::Jrcxz => (control::jcxz, K::Simple),
        M::Loop | M::Loope | M::Loopne => (control::loop_, K::Simple),
        M::Int | M::Int3 | M::Into | M::Int1 => (control::int, K::System),
        M::Iret | M::Iretd | M::Iretq => (control::iret, K::System),
        M::Movsb | M::Movsw | M::Movsd | M::Movsq if is_string_code(i.code()) => {
            (string::movs, K::String)
        }
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq if is_string_code(i.code()) => {
            (string::cmps, K::String)
        }
        M::Wait => (data::wait, K::Simple),
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => (string::stos, K::String),
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => (string::lods, K::String),
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => (string::scas, K::String),
        M::Insb | M::Insw | M::Insd => (string::ins, K::Io),
        M::Outsb | M::Outsw | M::Outsd => (string::outs, K::Io),
        M::In => (system::in_, K::Io),
        M::Out => (system::out, K::Io),
        M::Hlt => (system::hlt, K::System),
        M::Cpuid => (system::cpuid, K::System),
        M::Rdtsc => (system::rdtsc, K::System),
        M::Rdtscp => (system::rdtscp, K::System),
        M::Rdpid => (system::rdpid, K::System),
        M::Rdmsr => (system::rdmsr, K::System),
        M::Wrmsr => (system::wrmsr, K::System),
        M::Rdrand | M::Rdseed => (system::rdrand, K::System),
        M::Lgdt | M::Lidt => (system::lgdt_lidt, K::System),
        M::Sgdt | M::Sidt => (system::sgdt_sidt, K::System),
        M::Lldt => (system::lldt, K::System),
        M::Ltr => (system::ltr, K::System),
        M::Sldt | M::Str => (system::sldt_str, K::System),
        M::Lmsw => (system::lmsw, K::System),
        M::Smsw => (system::smsw, K::System),
        M::Clts => (system::clts, K::System),
        M::Invlpg => (system::invlpg, K::System),
        M::Invpcid => (system::invpcid, K::System),
        M::Stac | M::Clac => (system::stac_clac, K::Simple),
        M::Rdpkru => (system::rdpkru, K::Simple),
        M::Wrpkru => (system::wrpkru, K::System),
        M::Wbinvd | M::Invd => (system::wbinvd, K::System),
        M::Clflush | M::Clflushopt => (system::clflush, K::Simple),
        M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => (system::load_far_pointer, K::System),
        M::Swapgs => (system::swapgs, K::System),
        M::Rdfsbase | M::Rdgsbase | M::Wrfsbase | M::Wrgsbase => (system::fsgsbase, K::Simple),
        M::Lar | M::Lsl => (system::lar_lsl, K::System),
        M::Verr | M::Verw => (system::verr_verw, K::System),
        M::Arpl => (system::arpl, K::Simple),
        M::Syscall => (system::syscall, K::System),
        M::Sysret | M::Sysretq => (system::sysret, K::System),
        M::Sysenter => (system::sysenter, K::System),
        M::Sysexit | M::Sysexitq => (system::sysexit, K::System),
        M::Monitor => (system::monitor, K::System),
        M::Mwait => (system::mwait, K::System),
        M::Rdpmc => (system::rdpmc, K::System),
        M::Ud0 | M::Ud1 | M::Ud2 => (invalid_opcode, K::Simple),
        // Outside SMM (nestemu has none), RSM is #UD.
        M::Rsm => (invalid_opcode, K::Simple),
        M::Bound => (system::bound, K::Simple),
        M::Salc => (flagops::salc, K::Simple),
        _ => (unimplemented_insn, K::Simple),
    };
    h
}

/// True for the string forms of MOVS and CMPS (the mnemonics MOVSD and
/// CMPSD also name SSE2 instructions).
fn is_string_code(code: iced_x86::Code) -> bool {
    use iced_x86::Code as C;
    matches!(
        code,
        C::Movsb_m8_m8
            | C::Movsw_m16_m16
            | C::Movsd_m32_m32
            | C::Movsq_m64_m64
            | C::Cmpsb_m8_m8
            | C::Cmpsw_m16_m16
            | C::Cmpsd_m32_m32
            | C::Cmpsq_m64_m64
    )
}

/// True for `JMP/CALL m16:16/32/64` (an indirect far transfer through memory).
fn is_far_mem(i: &Instruction) -> bool {
    use iced_x86::Code as C;
    matches!(
        i.code(),
        C::Jmp_m1616 | C::Jmp_m1632 | C::Jmp_m1664 | C::Call_m1616 | C::Call_m1632 | C::Call_m1664
    )
}

/// True if the instruction ends a block: any control transfer, and
/// instructions that may change the mode, paging or interrupt state (their
/// handlers also set `stop_block`, this just avoids decoding past them).
fn ends_block(i: &Instruction) -> bool {
    !matches!(i.flow_control(), FlowControl::Next)
}

impl Machine {
    fn decoder_options(&self) -> u32 {
        match self.config.model.vendor {
            crate::cpu::cpuid::Vendor::Amd => DecoderOptions::AMD,
            crate::cpu::cpuid::Vendor::Intel => DecoderOptions::NONE,
        }
    }

    fn decoded(&self, insn: Instruction) -> DecodedInsn {
        let (handler, class) = handler_for(self, &insn);
        DecodedInsn {
            handler,
            insn,
            cost: self.config.cost.insn(class),
        }
    }

    /// The operation for a decoded instruction: pre-resolved where
    /// [`fast::compile`] knows its form (unless the cache is set to run the
    /// reference handlers only).
    fn op(&self, insn: Instruction) -> Op {
        let d = self.decoded(insn);
        if self.code.specialize {
            fast::compile(d)
        } else {
            Op::generic(d)
        }
    }

    /// The linear address of the current instruction, after the CS checks of
    /// an instruction fetch (SDM Vol. 3A 5.3: EIP beyond the CS limit, or a
    /// non-canonical RIP, is #GP(0)).
    fn fetch_linear(&self) -> Result<u64, Event> {
        let rip = self.cpu.rip;
        if self.cpu.long64() {
            if !mmu::is_canonical(rip, self.canonical_bits()) {
                return Err(Event::gp0());
            }
            return Ok(rip);
        }
        let cs = self.cpu.seg(SegReg::Cs);
        if rip > cs.limit as u64 {
            return Err(Event::gp0());
        }
        Ok(cs.base.wrapping_add(rip) & 0xffff_ffff)
    }

    /// [`Machine::fetch_block`] when its fetch hits the page cache and the
    /// block is cached and lies within the CS limit: the same counts, the
    /// same block. `None`, having counted nothing, otherwise.
    #[inline(always)]
    pub(crate) fn quick_fetch(&mut self) -> Option<u32> {
        let la = self.fetch_linear().ok()?;
        let pa = self.fetch_hit(la)?;
        let idx = self.code.lookup(pa, self.cpu.mode.code_bits)?;
        if !self.cpu.long64() {
            let cs_limit = self.cpu.seg(SegReg::Cs).limit as u64;
            if self.cpu.rip + self.code.bytes(idx) - 1 > cs_limit {
                return None;
            }
        }
        self.mmu.count_l1_hit(true);
        Some(idx)
    }

    /// Finds or decodes the block at the current CS:RIP.
    pub(crate) fn fetch_block(&mut self) -> Result<BlockRef, Event> {
        let la = self.fetch_linear()?;
        let pa = self.translate_fetch(la)?;
        let bits = self.cpu.mode.code_bits;
        let r = match self.code.lookup(pa, bits) {
            Some(idx) => BlockRef::Cached(idx),
            None => self.decode_block(la, pa, bits)?,
        };
        // Outside 64-bit mode the whole block must lie within the CS limit;
        // otherwise run its instructions one at a time and let the limit check
        // fault where it should.
        if !self.cpu.long64() {
            if let BlockRef::Cached(idx) = r {
                let len = self.code.bytes(idx);
                let cs_limit = self.cpu.seg(SegReg::Cs).limit as u64;
                if self.cpu.rip + len - 1 > cs_limit {
                    let first = self.code.first(idx);
                    if self.cpu.rip + first.insn.len() as u64 - 1 > cs_limit {
                        return Err(Event::gp0());
                    }
                    return Ok(BlockRef::Transient(first));
                }
            }
        }
        Ok(r)
    }

    #[cold]
    fn decode_block(&mut self, la: u64, pa: u64, bits: u8) -> Result<BlockRef, Event> {
        let in_page = (0x1000 - (pa & 0xfff)) as usize;
        let Some(off) = self.ram.offset(pa, in_page as u64) else {
            return self.decode_transient(la, bits);
        };
        let bytes = self.ram.slice(off, in_page).to_vec();
        let mut dec = Decoder::with_ip(bits as u32, &bytes, self.cpu.rip, self.decoder_options());
        let mut insns = Vec::with_capacity(16);
        let mut insn = Instruction::default();
        while dec.can_decode() && insns.len() < MAX_BLOCK {
            dec.decode_out(&mut insn);
            if dec.last_error() == DecoderError::NoMoreBytes {
                break;
            }
            let mut op = self.op(insn);
            op.start = insn.ip().wrapping_sub(self.cpu.rip) as u16;
            insns.push(op);
            if ends_block(&insn) || insn.is_invalid() {
                break;
            }
        }
        if insns.is_empty() {
            // The first instruction crosses into the next page.
            return self.decode_transient(la, bits);
        }
        let idx = self.code.insert(Block {
            ops: insns,
            start_pa: pa,
            bits,
        });
        Ok(BlockRef::Cached(idx))
    }

    /// Decodes one instruction through linear fetches (page-crossing, or not
    /// in RAM); not cached.
    #[cold]
    fn decode_transient(&mut self, la: u64, bits: u8) -> Result<BlockRef, Event> {
        let mut buf = [0u8; 15];
        // Fetch as many bytes as the decoder could need, but fault only on
        // bytes the instruction actually uses: fetch the first page's part,
        // then the rest, and decode with what is available.
        let first = (0x1000 - (la & 0xfff) as usize).min(15);
        for (k, b) in buf.iter_mut().enumerate().take(first) {
            let pa = self.translate(la + k as u64, AccessKind::Execute, Privilege::Current)?;
            *b = self.phys_read(pa, 1) as u8;
        }
        let mut dec = Decoder::with_ip(
            bits as u32,
            &buf[..first],
            self.cpu.rip,
            self.decoder_options(),
        );
        let mut insn = dec.decode();
        if dec.last_error() == DecoderError::NoMoreBytes {
            let la2 = self.wrap_linear(la + first as u64);
            let pa2 = self.translate(la2, AccessKind::Execute, Privilege::Current)?;
            for (k, b) in buf.iter_mut().enumerate().skip(first) {
                *b = self.phys_read(pa2 + (k - first) as u64, 1) as u8;
            }
            let mut dec = Decoder::with_ip(bits as u32, &buf, self.cpu.rip, self.decoder_options());
            insn = dec.decode();
        }
        Ok(BlockRef::Transient(self.op(insn)))
    }
}

#[cfg(test)]
mod coverage {
    use super::*;
    use crate::machine::{Machine, MachineConfig};
    use iced_x86::{Code, EncodingKind};

    /// An instruction without a handler stops the machine with status 6,
    /// naming the instruction and its address.
    #[test]
    fn unimplemented_stops_with_its_name() {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        m.cpu.rip = 0x1234;
        let mut i = Instruction::default();
        i.set_code(Code::Rsm);
        let ev = unimplemented_insn(&mut m, &i).unwrap_err();
        let stop = m.raise(ev).expect("the machine stops");
        assert_eq!(stop.exit_status(), 6);
        let text = stop.describe();
        assert!(
            text.contains("Rsm") && text.contains("0xffff1234"),
            "{text}"
        );
    }

    /// The legacy-encoded instructions the model makes available (CPUID
    /// advertises their feature) that have no handler yet. Each would stop
    /// the machine with status 6 naming it.
    pub(crate) fn unimplemented_available(m: &Machine) -> Vec<Code> {
        let mut out = Vec::new();
        for code in Code::values() {
            if code == Code::INVALID {
                continue;
            }
            let mut i = Instruction::default();
            i.set_code(code);
            if i.encoding() != EncodingKind::Legacy || code.mnemonic() == Mnemonic::INVALID {
                continue;
            }
            if !features::available(&m.config.model, i.cpuid_features()) {
                continue;
            }
            let (h, _) = handler_for(m, &i);
            if std::ptr::fn_addr_eq(h, unimplemented_insn as Handler) {
                out.push(code);
            }
        }
        out
    }

    /// Every legacy instruction whose CPUID feature the Intel and AMD presets
    /// advertise has a handler: "advertise only what works" (DESIGN.md).
    #[test]
    fn advertised_instructions_have_handlers() {
        for model in [
            crate::cpu::cpuid::CpuModel::intel(),
            crate::cpu::cpuid::CpuModel::amd(),
        ] {
            advertised_have_handlers(model);
        }
    }

    fn advertised_have_handlers(model: crate::cpu::cpuid::CpuModel) {
        let m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            model,
            ..Default::default()
        });
        let missing: Vec<String> = unimplemented_available(&m)
            .iter()
            .map(|c| format!("{c:?}"))
            // Assembler pseudo-instructions, never decoded.
            .filter(|n| !n.starts_with("Declare") && n != "Zero_bytes")
            .collect();
        assert!(
            missing.is_empty(),
            "{} instructions CPUID makes available have no handler: {}",
            missing.len(),
            missing.join(" ")
        );
    }
}
