//! The native side: the instruction run on the host CPU from an executable page.

use super::*;

/// An executable page (RWX), mapped once per test, and the memory operand
/// buffer (at a fixed address, so repeated runs record the same FDP).
pub(super) struct ExecPage {
    ptr: *mut u8,
    mem: std::cell::RefCell<Box<Mem>>,
}

pub(super) const PAGE: usize = 4096;
/// Offset of the instruction under test in the native stub.
pub(super) const NATIVE_AT: usize = 15;
/// `mov ax, 1234h`, then after the instruction `mov [rsi+3e8h], ax`: AX
/// (FNSTSW AX) lands in the compared memory. Same bytes in both modes.
pub(super) const AX_IN: [u8; 4] = [0x66, 0xb8, 0x34, 0x12];
pub(super) const AX_OUT: [u8; 7] = [0x66, 0x89, 0x86, 0xe8, 0x03, 0x00, 0x00];

impl ExecPage {
    pub(super) fn new() -> Self {
        let ret: isize;
        // SAFETY: mmap(NULL, 4096, PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS,
        // -1, 0) through the raw Linux x86-64 system call; no memory is
        // touched by the call itself.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") 9isize => ret,
                in("rdi") 0usize,
                in("rsi") PAGE,
                in("rdx") 7usize,
                in("r10") 0x22usize,
                in("r8") -1isize,
                in("r9") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        assert!(ret > 0 && ret % PAGE as isize == 0, "mmap failed: {ret}");
        Self {
            ptr: ret as *mut u8,
            mem: std::cell::RefCell::new(Box::new(Mem([0; 1024]))),
        }
    }

    /// Runs `insn` with a copy of `mem` as its operand: the run and the
    /// operand afterwards.
    pub(super) fn run_with(
        &self,
        insn: &[u8],
        input: &[u8; 108],
        mem: &Mem,
        flags: u64,
    ) -> (Run, Mem) {
        let mut buf = self.mem.borrow_mut();
        **buf = *mem;
        let r = self.run(insn, input, &mut buf, flags);
        (r, **buf)
    }

    /// Runs `insn` natively.
    pub(super) fn run(&self, insn: &[u8], input: &[u8; 108], mem: &mut Mem, flags: u64) -> Run {
        let mut code = Vec::with_capacity(64);
        code.extend_from_slice(&[0xdd, 0x31]); // fnsave [rcx]
        code.extend_from_slice(&[0x0f, 0xae, 0x59, 0x6c]); // stmxcsr [rcx+108]
        code.extend_from_slice(&[0x41, 0x50, 0x9d]); // push r8; popfq
        code.extend_from_slice(&AX_IN);
        code.extend_from_slice(&[0xdd, 0x27]); // frstor [rdi]
        assert_eq!(code.len(), NATIVE_AT);
        code.extend_from_slice(insn);
        code.extend_from_slice(&AX_OUT);
        code.extend_from_slice(&[0xdd, 0x32]); // fnsave [rdx]
        code.extend_from_slice(&[0x9c, 0x58]); // pushfq; pop rax
        code.extend_from_slice(&[0xdd, 0x21]); // frstor [rcx]
        code.extend_from_slice(&[0x0f, 0xae, 0x51, 0x6c]); // ldmxcsr [rcx+108]
        code.push(0xc3); // ret
                         // SAFETY: the page is ours, writable and larger than the stub; it is
                         // only executed by the call below on this thread.
        unsafe {
            core::ptr::copy_nonoverlapping(code.as_ptr(), self.ptr, code.len());
        }
        let mut out = [0u8; 108];
        let mut host = [0u8; 112];
        type Stub = unsafe extern "sysv64" fn(*const u8, *mut u8, *mut u8, *mut u8, u64) -> u64;
        // SAFETY: the page holds the stub just written; it follows the SysV
        // ABI (it clobbers RAX and the caller-saved XMM registers, and saves
        // and restores the x87 state and MXCSR), and touches only the buffers
        // passed in: 108-byte images, the 112-byte host save area and the
        // 1-KiB memory operand.
        let rflags = unsafe {
            let f: Stub = core::mem::transmute(self.ptr);
            f(
                input.as_ptr(),
                mem.0.as_mut_ptr(),
                out.as_mut_ptr(),
                host.as_mut_ptr(),
                flags,
            )
        };
        Run {
            image: out,
            rflags,
            insn_at: self.ptr as u64 as u32 + NATIVE_AT as u32,
            mem_at: mem.0.as_ptr() as u64 as u32,
        }
    }
}
