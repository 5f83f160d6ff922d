//! Native execution on the host CPU: the instruction runs inside a small
//! routine in an executable page that loads the state, executes it and
//! stores the state back; #XM arrives as SIGFPE and resumes after it.

use super::{State, MEM, OFF_GPR, OFF_MM, OFF_MXIN, OFF_MXOUT, OFF_RFIN, OFF_RFOUT};
use std::cell::Cell;

/// An executable page with the routine around one instruction.
pub struct Native {
    page: *mut u8,
    /// The test memory while the routine runs: 16-byte aligned like the
    /// guest's, so aligned-operand instructions see the same alignment.
    mem: Box<Aligned>,
}

#[repr(C, align(64))]
struct Aligned([u8; MEM]);

thread_local! {
    /// Set by the SIGFPE handler: MXCSR when the instruction raised #XM.
    static FAULT: Cell<Option<u32>> = const { Cell::new(None) };
    /// Where to resume after a fault (the address after the instruction).
    /// Per thread: the signal arrives on the thread that faulted, and the
    /// test threads run their own routines concurrently.
    static RESUME: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn on_sigfpe(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers;
    // fpregs points at the saved FXSAVE-format state, whose MXCSR holds the
    // flags the faulting instruction recorded.
    unsafe {
        let uc = ctx as *mut libc::ucontext_t;
        let fp = (*uc).uc_mcontext.fpregs;
        FAULT.with(|f| f.set(Some((*fp).mxcsr)));
        (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] = RESUME.with(|r| r.get()) as i64;
    }
}

fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a plain sigaction installation with a handler that only
        // touches thread-locals and the interrupted context.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_sigfpe as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGFPE, &sa, core::ptr::null_mut()), 0);
        }
    });
}

impl Native {
    pub fn new() -> Self {
        // SAFETY: an anonymous private mapping; checked for failure.
        let page = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        install_handler();
        Self {
            page: page as *mut u8,
            mem: Box::new(Aligned([0; MEM])),
        }
    }

    /// Assembles the routine around `insn` (machine code) into the page.
    pub fn load(&mut self, insn: &[u8]) {
        let base = self.page as u64;
        let (code, at) = jit::routine(insn);
        assert_eq!(&code[at..at + insn.len()], insn);
        // SAFETY: the page is ours, writable and 4096 bytes long.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), self.page, code.len()) };
        RESUME.with(|r| r.set(base + (at + insn.len()) as u64));
    }

    /// Runs the loaded routine on `st` with the test memory `mem`; returns
    /// the MXCSR seen at an #XM, if one was raised.
    pub fn run(&mut self, st: &mut State, mem: &mut [u8; MEM]) -> Option<u32> {
        self.mem.0 = *mem;
        let p = self.mem.0.as_mut_ptr() as u64;
        st.gpr[4] = p;
        st.gpr[5] = p;
        FAULT.with(|f| f.set(None));
        // SAFETY: the page holds a complete routine following the SysV ABI
        // that reads and writes only `st` and the memory RBX/RDI point at.
        unsafe {
            let f: extern "sysv64" fn(*mut State) = core::mem::transmute(self.page);
            f(st);
        }
        *mem = self.mem.0;
        FAULT.with(|f| f.get())
    }
}

/// The native routine: save callee-saved registers and MXCSR, load the
/// state, run the instruction, store the state, restore.
mod jit {
    use super::*;
    use iced_x86::code_asm::*;

    const XMMS: [AsmRegisterXmm; 16] = [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
        xmm14, xmm15,
    ];
    const MMS: [AsmRegisterMm; 8] = [mm0, mm1, mm2, mm3, mm4, mm5, mm6, mm7];
    const GPRS: [AsmRegister64; 6] = [rax, rcx, rdx, rsi, rdi, rbx];

    fn prologue(a: &mut CodeAssembler) -> Result<(), IcedError> {
        for r in [rbx, rbp, r12, r13, r14, r15] {
            a.push(r)?;
        }
        a.sub(rsp, 8)?;
        a.stmxcsr(dword_ptr(rsp))?;
        a.mov(r15, rdi)?;
        for (k, r) in MMS.iter().enumerate() {
            a.movq(*r, qword_ptr(r15 + OFF_MM + 8 * k as i32))?;
        }
        for (k, r) in XMMS.iter().enumerate() {
            a.movdqu(*r, xmmword_ptr(r15 + 16 * k as i32))?;
        }
        a.ldmxcsr(dword_ptr(r15 + OFF_MXIN))?;
        a.push(qword_ptr(r15 + OFF_RFIN))?;
        a.popfq()?;
        for (k, r) in GPRS.iter().enumerate() {
            a.mov(*r, qword_ptr(r15 + OFF_GPR + 8 * k as i32))?;
        }
        Ok(())
    }

    fn epilogue(a: &mut CodeAssembler) -> Result<(), IcedError> {
        a.pushfq()?;
        a.pop(qword_ptr(r15 + OFF_RFOUT))?;
        a.stmxcsr(dword_ptr(r15 + OFF_MXOUT))?;
        for (k, r) in GPRS.iter().enumerate() {
            a.mov(qword_ptr(r15 + OFF_GPR + 8 * k as i32), *r)?;
        }
        for (k, r) in XMMS.iter().enumerate() {
            a.movdqu(xmmword_ptr(r15 + 16 * k as i32), *r)?;
        }
        for (k, r) in MMS.iter().enumerate() {
            a.movq(qword_ptr(r15 + OFF_MM + 8 * k as i32), *r)?;
        }
        a.emms()?;
        a.ldmxcsr(dword_ptr(rsp))?;
        a.add(rsp, 8)?;
        for r in [r15, r14, r13, r12, rbp, rbx] {
            a.pop(r)?;
        }
        a.ret()
    }

    /// The routine's bytes (position-independent) and the offset of the
    /// instruction in it.
    pub fn routine(insn: &[u8]) -> (Vec<u8>, usize) {
        static PARTS: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        let (pro, epi) = PARTS.get_or_init(|| {
            let mut a = CodeAssembler::new(64).unwrap();
            prologue(&mut a).unwrap();
            let mut e = CodeAssembler::new(64).unwrap();
            epilogue(&mut e).unwrap();
            (a.assemble(0).unwrap(), e.assemble(0).unwrap())
        });
        let mut code = pro.clone();
        code.extend_from_slice(insn);
        code.extend_from_slice(epi);
        (code, pro.len())
    }
}
