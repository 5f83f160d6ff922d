//! The guest's fixed memory layout, shared by both machines. Linear addresses
//! equal physical addresses (identity paging).
//!
//! ```text
//! 0x0000_1000  GDT, TSS                          supervisor (2-MiB page 0)
//! 0x0000_2000  IDT (256 x 16 bytes)
//! 0x0000_3000  ring-0 stub: entry, exception stubs, common handler
//! 0x0000_8000  PML4, PDPT, PD, PT; PDPT, PD, PT for the top canonical page
//! 0x0002_0000  ring-0 stack top
//! 0x0020_0000  4-KiB pages: guard (not present), scratch, read-only, guard,
//!              and the page mapped at 0x7fff_ffff_f000
//! 0x0040_0000  ring-3 driver code                user, 2-MiB pages from here
//! 0x0040_1000  driver variables, driver stack
//! 0x0080_0000  sequence code
//! 0x0100_0000  input records (initial state and scratch contents)
//! 0x0200_0000  output records (final state, exception, scratch contents)
//! ```

/// Guest RAM.
pub const RAM: u64 = 64 << 20;
/// The GDT.
pub const GDT: u64 = 0x1000;
/// The 64-bit TSS.
pub const TSS: u64 = 0x1100;
/// The IDT.
pub const IDT: u64 = 0x2000;
/// The ring-0 stub.
pub const STUB: u64 = 0x3000;
/// Largest ring-0 stub.
pub const STUB_MAX: u64 = 0x5000;
/// PML4.
pub const PML4: u64 = 0x8000;
/// PDPT.
pub const PDPT: u64 = 0x9000;
/// The page directory for 0-1 GiB.
pub const PD: u64 = 0xa000;
/// The page table for 2-4 MiB.
pub const PT: u64 = 0xb000;
/// PDPT, PD and PT mapping the last page below the canonical hole.
pub const PDPT_HI: u64 = 0xc000;
/// See [`PDPT_HI`].
pub const PD_HI: u64 = 0xd000;
/// See [`PDPT_HI`].
pub const PT_HI: u64 = 0xe000;
/// The highest canonical lower-half page, mapped user read/write: accesses
/// that start here and run past 0x7fff_ffff_ffff cross into non-canonical
/// addresses.
pub const TOP_PAGE: u64 = 0x7fff_ffff_f000;
/// The physical page behind [`TOP_PAGE`].
pub const TOP_PAGE_PHYS: u64 = 0x20_5000;
/// Ring-0 stack top (TSS.RSP0).
pub const STACK0_TOP: u64 = 0x2_0000;

/// The scratch window: memory operands and the sequences' stack live here.
/// It straddles the boundary between two present user pages.
pub const SCRATCH: u64 = 0x20_1e00;
/// Bytes in the scratch window.
pub const SCRATCH_LEN: u64 = 0x400;
/// The last bytes of [`TOP_PAGE`]: a second window, for accesses at the end
/// of the canonical lower half.
pub const TOP_WINDOW: u64 = TOP_PAGE + 0x1000 - TOP_WINDOW_LEN;
/// Bytes in the top window.
pub const TOP_WINDOW_LEN: u64 = 0x100;
/// The memory windows each sequence starts with fresh contents in and whose
/// contents are compared afterwards: (address, bytes).
pub const WINDOWS: [(u64, u64); 2] = [(SCRATCH, SCRATCH_LEN), (TOP_WINDOW, TOP_WINDOW_LEN)];
/// Bytes in all windows, as stored in input and output records.
pub const WINDOW_BYTES: u64 = SCRATCH_LEN + TOP_WINDOW_LEN;
/// A user page mapped read-only (writes fault).
pub const RO_PAGE: u64 = 0x20_3000;
/// A not-present page just below the scratch pages.
pub const GUARD_LO: u64 = 0x20_0000;
/// A not-present page above the read-only page.
pub const GUARD_HI: u64 = 0x20_4000;

/// The ring-3 driver.
pub const DRIVER: u64 = 0x40_0000;
/// Driver variables (see [`var`]).
pub const VARS: u64 = 0x40_1000;
/// The driver's own stack top.
pub const DRIVER_STACK_TOP: u64 = 0x40_2000;
/// Sequence code.
pub const CODE: u64 = 0x80_0000;
/// End of the sequence-code area.
pub const CODE_END: u64 = 0x100_0000;
/// Input records.
pub const IN_BASE: u64 = 0x100_0000;
/// Output records.
pub const OUT_BASE: u64 = 0x200_0000;
/// Bytes of x87/SSE state in records (an FXSAVE64 image).
pub const FPU_BYTES: u64 = 0x200;
/// Bytes per input record.
pub const IN_SIZE: u64 = 0x300 + WINDOW_BYTES;
/// Bytes per output record.
pub const OUT_SIZE: u64 = 0x300 + WINDOW_BYTES;
/// Most sequences in one batch.
pub const MAX_BATCH: usize = ((OUT_BASE - IN_BASE) / IN_SIZE) as usize;

/// The end mark before any sequence end was reached.
pub const NOT_ENDED: u32 = u32::MAX;

/// Initial RFLAGS of the ring-3 driver (IF = 1, reserved bit 1).
pub const USER_RFLAGS: u64 = 0x202;

/// GDT selectors. The layout suits SYSCALL/SYSRET (STAR): kernel code, kernel
/// data; then user code32, user data, user code64.
pub mod sel {
    /// 64-bit kernel code.
    pub const KCODE: u16 = 0x08;
    /// Kernel data.
    pub const KDATA: u16 = 0x10;
    /// 32-bit user code (unused; SYSRET's layout needs the slot).
    pub const UCODE32: u16 = 0x1b;
    /// User data, RPL 3.
    pub const UDATA: u16 = 0x23;
    /// 64-bit user code, RPL 3.
    pub const UCODE: u16 = 0x2b;
    /// The 64-bit TSS (16-byte descriptor).
    pub const TSS: u16 = 0x30;
}

/// Driver variables, at [`VARS`] + offset.
pub mod var {
    /// Index of the current sequence.
    pub const CUR: u64 = 0x00;
    /// Number of sequences in the batch.
    pub const COUNT: u64 = 0x08;
    /// The current output record.
    pub const OUT: u64 = 0x10;
    /// The current sequence's entry point.
    pub const ENTRY: u64 = 0x18;
    /// The sequence's RSP at its end.
    pub const SAVED_RSP: u64 = 0x20;
    /// The end mark of the sequence that last reached its end (see
    /// [`super::output::ENDED`]); the driver sets it to [`super::NOT_ENDED`]
    /// before entering a sequence.
    pub const ENDED: u64 = 0x28;
    /// The frame of an exception taken in ring 0: vector, error code, RIP,
    /// CS, RFLAGS, RSP, SS.
    pub const RING0_FRAME: u64 = 0x40;
}

/// Offsets in an input record.
pub mod input {
    /// RAX..R15 at 8 * n.
    pub const GPRS: u64 = 0x00;
    /// RFLAGS.
    pub const RFLAGS: u64 = 0x80;
    /// The sequence's entry point.
    pub const ENTRY: u64 = 0x88;
    /// The initial x87/SSE state, an FXSAVE64 image loaded with FXRSTOR64
    /// (16-byte aligned).
    pub const FPU: u64 = 0x100;
    /// Initial contents of the windows, one after the other
    /// ([`super::WINDOW_BYTES`] bytes).
    pub const WINDOWS: u64 = 0x300;
}

/// Offsets in an output record.
pub mod output {
    /// RAX..R15 at 8 * n.
    pub const GPRS: u64 = 0x00;
    /// RFLAGS at the end.
    pub const RFLAGS: u64 = 0x80;
    /// Vector + 1 of the exception taken (0: none).
    pub const EXC_VECTOR: u64 = 0x88;
    /// Its error code (0 if none was pushed).
    pub const EXC_ERROR: u64 = 0x90;
    /// The RIP it pushed.
    pub const EXC_RIP: u64 = 0x98;
    /// CR2 when it was taken.
    pub const EXC_CR2: u64 = 0xa0;
    /// The RFLAGS it pushed.
    pub const EXC_RFLAGS: u64 = 0xa8;
    /// 1 once the sequence's state is stored.
    pub const DONE: u64 = 0xb0;
    /// The end mark left by the sequence end control came through (a
    /// dword): the low 32 bits of the address of that sequence's code, or
    /// [`super::NOT_ENDED`] if none was reached (an exception). A sequence
    /// whose corrupted return address led into another sequence of the batch
    /// ends through that sequence's end, with its mark.
    pub const ENDED: u64 = 0xb8;
    /// The final x87/SSE state, stored with FXSAVE64.
    pub const FPU: u64 = 0x100;
    /// Final contents of the windows ([`super::WINDOW_BYTES`] bytes).
    pub const WINDOWS: u64 = 0x300;
}

/// The value the stub writes to port 0xf4 when every sequence ran.
pub const EXIT_DONE: u32 = 0;
/// Port the stub reports on.
pub const EXIT_PORT: u16 = 0xf4;
/// Added to the vector of an exception taken in ring 0 (the harness broke).
pub const EXIT_RING0_FAULT: u32 = 0x100;
