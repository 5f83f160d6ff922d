//! The fixed memory layout of kit programs. Everything is identity-mapped.
//!
//! ```text
//! 0x0000_7000  real-mode stack top (grows down)
//! 0x0000_8000  16-bit chunk (copied here from the image at start-up)
//! 0x0010_0000  image base: Multiboot header, then the 32-bit chunk
//! 0x0010_8000  16-bit chunk as stored in the image
//! 0x0010_a000  GDT, TSS64, TSS32
//! 0x0010_b000  IDT64 (256 x 16 bytes)
//! 0x0010_c000  IDT32 (256 x 8 bytes)
//! 0x0010_d000  runtime variables (see `var`)
//! 0x0010_e000  PML4, then PDPT at 0x10_f000, four PDs at 0x11_0000
//! 0x0011_4000  kernel stack (top 0x11_c000), IST stack (top 0x12_0000)
//! 0x0012_0000  64-bit chunk (runtime, handlers, program), any size
//! 0x0100_0000  case records, 256 bytes each
//! ```

/// Where the Multiboot image is loaded.
pub const IMAGE_BASE: u64 = 0x10_0000;
/// Size of the Multiboot header block at the image start.
pub const HEADER_SIZE: u64 = 0x40;
/// The 32-bit chunk (Multiboot entry).
pub const CHUNK32: u64 = IMAGE_BASE + HEADER_SIZE;
/// Largest 32-bit chunk.
pub const CHUNK32_MAX: u64 = 0x8000 - HEADER_SIZE;
/// Where the 16-bit chunk runs.
pub const LOW16: u64 = 0x8000;
/// Where the 16-bit chunk is stored in the image.
pub const CHUNK16_STORE: u64 = IMAGE_BASE + 0x8000;
/// Largest 16-bit chunk.
pub const CHUNK16_MAX: u64 = 0x2000;
/// Real-mode stack top.
pub const STACK16_TOP: u64 = 0x7000;
/// The GDT.
pub const GDT: u64 = IMAGE_BASE + 0xa000;
/// The 64-bit TSS.
pub const TSS64: u64 = GDT + 0x100;
/// The 32-bit TSS.
pub const TSS32: u64 = GDT + 0x200;
/// The 64-bit IDT.
pub const IDT64: u64 = IMAGE_BASE + 0xb000;
/// The 32-bit IDT.
pub const IDT32: u64 = IMAGE_BASE + 0xc000;
/// Runtime variables.
pub const VARS: u64 = IMAGE_BASE + 0xd000;
/// PML4.
pub const PML4: u64 = IMAGE_BASE + 0xe000;
/// PDPT.
pub const PDPT: u64 = IMAGE_BASE + 0xf000;
/// Four page directories mapping 0-4 GiB with 2-MiB pages.
pub const PD: u64 = IMAGE_BASE + 0x1_0000;
/// Kernel stack top.
pub const STACK_TOP: u64 = IMAGE_BASE + 0x1_c000;
/// Exception (IST1) stack top.
pub const IST_TOP: u64 = IMAGE_BASE + 0x2_0000;
/// The 64-bit chunk.
pub const CHUNK64: u64 = IMAGE_BASE + 0x2_0000;
/// User-mode stack top (cases that run at CPL 3), an address in the user
/// alias.
pub const USER_STACK_TOP: u64 = USER_ALIAS + 0x80_0000;
/// The user alias: the first 4 GiB mapped again here with U/S = 1, while the
/// identity map stays supervisor-only (unless `Program::user_pages`).
pub const USER_ALIAS: u64 = 0x80_0000_0000;
/// Case records.
pub const RESULTS: u64 = 0x100_0000;
/// Bytes per case record.
pub const RECORD_SIZE: u64 = 256;
/// Guest RAM the layout needs (case records included).
pub const MIN_RAM: u64 = 32 << 20;

/// GDT selectors.
pub mod sel {
    /// 64-bit code, DPL 0.
    pub const CODE64: u16 = 0x08;
    /// Flat data, DPL 0.
    pub const DATA: u16 = 0x10;
    /// 32-bit flat code, DPL 0.
    pub const CODE32: u16 = 0x18;
    /// 16-bit code, base 0, limit 64 KiB.
    pub const CODE16: u16 = 0x20;
    /// 16-bit data, base 0, limit 64 KiB.
    pub const DATA16: u16 = 0x28;
    /// 64-bit code, DPL 3 (RPL 3).
    pub const USER_CODE64: u16 = 0x33;
    /// Flat data, DPL 3 (RPL 3).
    pub const USER_DATA: u16 = 0x3b;
    /// 32-bit flat code, DPL 3 (RPL 3).
    pub const USER_CODE32: u16 = 0x43;
    /// The 64-bit TSS (16-byte descriptor).
    pub const TSS64: u16 = 0x48;
    /// The 32-bit TSS.
    pub const TSS32: u16 = 0x58;
}

/// Offsets of runtime variables in [`VARS`].
pub mod var {
    /// If non-zero, the exception handler resumes here (and clears it).
    pub const RESUME: u64 = 0x00;
    /// Address of the current case record, or 0.
    pub const RECORD: u64 = 0x08;
    /// Exceptions taken.
    pub const EXC_COUNT: u64 = 0x10;
    /// Kernel RSP saved around a case.
    pub const SAVED_SP: u64 = 0x18;
    /// Failed checks.
    pub const FAILS: u64 = 0x20;
    /// The Multiboot information address (EBX at entry).
    pub const MBI: u64 = 0x28;
    /// Scratch for the 16-bit chunk's return.
    pub const SCRATCH: u64 = 0x30;
    /// The 8259 masks at entry, master then slave (one byte each), read
    /// before the start-up code masks both chips.
    pub const FIRMWARE_PIC_MASKS: u64 = 0x38;
    /// Scratch memory for tests (256 bytes).
    pub const TEST_DATA: u64 = 0x100;
    /// Interrupt handling mode per vector (256 bytes; see `crate::irq`).
    /// Vectors with mode 0 are exceptions recorded into the current case.
    pub const IRQ_MODE: u64 = 0x200;
    /// Number of vectors logged in [`IRQ_LOG`] (u64).
    pub const IRQ_LOG_LEN: u64 = 0x300;
    /// The vectors of counted interrupts, in arrival order (one byte each).
    pub const IRQ_LOG: u64 = 0x308;
    /// Capacity of [`IRQ_LOG`].
    pub const IRQ_LOG_CAP: u64 = 0x78;
    /// Interrupts counted per vector (256 x u32).
    pub const IRQ_COUNT: u64 = 0x400;
    /// A hook routine per vector (256 x u64), called for mode `HOOK`.
    pub const IRQ_HOOK: u64 = 0x800;
}

/// Offsets in a case record.
pub mod rec {
    /// RAX..R15 at 8 * n.
    pub const GPRS: u64 = 0x00;
    /// RFLAGS after the body.
    pub const RFLAGS: u64 = 0x80;
    /// Exception vector + 1 (0: none).
    pub const EXC_VECTOR: u64 = 0x88;
    /// Exception error code (0 if none pushed).
    pub const EXC_ERROR: u64 = 0x90;
    /// RIP the exception pushed.
    pub const EXC_RIP: u64 = 0x98;
    /// CR2 at the exception.
    pub const EXC_CR2: u64 = 0xa0;
    /// Set to 1 when the case finished.
    pub const DONE: u64 = 0xa8;
    /// CS the exception pushed.
    pub const EXC_CS: u64 = 0xb0;
    /// RFLAGS the exception pushed.
    pub const EXC_RFLAGS: u64 = 0xb8;
    /// RSP the exception pushed (64-bit mode).
    pub const EXC_RSP: u64 = 0xc0;
    /// SS the exception pushed (64-bit mode).
    pub const EXC_SS: u64 = 0xc8;
    /// DR6 at the exception.
    pub const EXC_DR6: u64 = 0xd0;
    /// Free slots for the body (0xd8..0x100).
    pub const USER: u64 = 0xd8;
}
