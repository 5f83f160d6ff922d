//! guestkit: how nestemu's guest programs are written.
//!
//! Guests are bare-metal x86 programs assembled from Rust with iced-x86's code
//! assembler, so a plain `cargo test` builds them on any host with no external
//! toolchain. A [`Program`] boots through Multiboot (32-bit protected mode),
//! can drop to real mode and come back, enters long mode on identity-mapped
//! paging, and runs *cases*: instruction sequences whose final registers,
//! flags and any exception are dumped to a record in guest memory
//! ([`layout::RESULTS`]) for the host to check. The runtime prints on COM1 and
//! exits through isa-debug-exit (port 0xf4); every exception vector has a
//! handler that records the exception into the current case and resumes after
//! the case body, unless the vector has an interrupt mode ([`irq`]): then the
//! handler counts it, sends the EOIs asked for, and returns to the
//! interrupted code. [`platform`] has emitters for device access, [`checks`]
//! guest-side checks that print `ok`/`FAIL` lines.
#![forbid(unsafe_code)]

pub mod asm;
pub mod checks;
pub mod irq;
pub mod layout;
pub mod platform;
pub mod program;
pub mod rt16;
pub mod rt32;
pub mod rt64;
pub mod svm;
pub mod vmx;

pub use asm::{Asm, AsmResult, Chunk, Label};
pub use program::{Built, Program};
pub use rt64::{enter_user, Rt64};

/// A decoded case record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// RAX..R15.
    pub gprs: [u64; 16],
    /// RFLAGS after the body.
    pub rflags: u64,
    /// The exception taken, if any: (vector, error code, RIP).
    pub exception: Option<(u8, u64, u64)>,
    /// The rest of the pushed frame: CS, RFLAGS, RSP, SS (RSP and SS in
    /// 64-bit mode only).
    pub frame: [u64; 4],
    /// DR6 at the exception (64-bit cases).
    pub dr6: u64,
    /// CR2 at the exception.
    pub cr2: u64,
    /// The case ran to its end.
    pub done: bool,
    /// The body's free slots.
    pub user: [u64; 5],
}

impl Record {
    /// Decodes a 256-byte record.
    pub fn parse(b: &[u8]) -> Self {
        let q =
            |o: u64| u64::from_le_bytes(b[o as usize..o as usize + 8].try_into().expect("8 bytes"));
        let mut gprs = [0; 16];
        for (n, g) in gprs.iter_mut().enumerate() {
            *g = q(8 * n as u64);
        }
        let vec = q(layout::rec::EXC_VECTOR);
        let mut user = [0; 5];
        for (n, u) in user.iter_mut().enumerate() {
            *u = q(layout::rec::USER + 8 * n as u64);
        }
        Self {
            gprs,
            rflags: q(layout::rec::RFLAGS),
            exception: (vec != 0).then(|| {
                (
                    (vec - 1) as u8,
                    q(layout::rec::EXC_ERROR),
                    q(layout::rec::EXC_RIP),
                )
            }),
            cr2: q(layout::rec::EXC_CR2),
            frame: [
                q(layout::rec::EXC_CS),
                q(layout::rec::EXC_RFLAGS),
                q(layout::rec::EXC_RSP),
                q(layout::rec::EXC_SS),
            ],
            dr6: q(layout::rec::EXC_DR6),
            done: q(layout::rec::DONE) == 1,
            user,
        }
    }
}
