//! A two-pass wrapper around iced-x86's code assembler: code can use the
//! absolute address of any of its own labels (far jumps, IDT entries, pointers
//! in data). Pass one assembles with a placeholder address; pass two with the
//! addresses pass one found. Code must use fixed-size encodings where it embeds
//! such addresses (far jumps, `mov r32, imm32`), so both passes lay out alike;
//! [`build`] checks that they did.

use iced_x86::code_asm::{CodeAssembler, CodeLabel};
use iced_x86::BlockEncoderOptions;

/// The address used for labels before pass one has placed them: large, so
/// immediates take their long encoding in both passes.
pub const PLACEHOLDER: u64 = 0x4000_0000;

/// A label with its creation index.
#[derive(Clone, Copy, Debug)]
pub struct Label {
    /// The assembler's label.
    pub l: CodeLabel,
    idx: usize,
}

/// The assembler handed to a chunk's code generator.
pub struct Asm {
    /// The iced-x86 code assembler.
    pub a: CodeAssembler,
    labels: Vec<CodeLabel>,
    known: Option<Vec<u64>>,
}

impl core::fmt::Debug for Asm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Asm")
            .field("labels", &self.labels.len())
            .finish()
    }
}

impl core::ops::Deref for Asm {
    type Target = CodeAssembler;
    fn deref(&self) -> &CodeAssembler {
        &self.a
    }
}

impl core::ops::DerefMut for Asm {
    fn deref_mut(&mut self) -> &mut CodeAssembler {
        &mut self.a
    }
}

/// The error type of generators.
pub type AsmResult<T = ()> = Result<T, iced_x86::IcedError>;

impl Asm {
    /// Creates a label.
    pub fn label(&mut self) -> Label {
        let l = self.a.create_label();
        self.labels.push(l);
        Label {
            l,
            idx: self.labels.len() - 1,
        }
    }

    /// Places a label at the current position.
    pub fn set(&mut self, l: &mut Label) -> AsmResult {
        self.a.set_label(&mut l.l)?;
        self.labels[l.idx] = l.l;
        Ok(())
    }

    /// The absolute address of a label (a placeholder during pass one).
    pub fn addr(&self, l: &Label) -> u64 {
        self.known
            .as_ref()
            .and_then(|k| k.get(l.idx).copied())
            .unwrap_or(PLACEHOLDER)
    }

    /// True during pass two (addresses are real).
    pub fn final_pass(&self) -> bool {
        self.known.is_some()
    }
}

/// An assembled chunk: its bytes at `base` and the address of every label in
/// creation order.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Load address.
    pub base: u64,
    /// Machine code and data.
    pub bytes: Vec<u8>,
    /// Label addresses in creation order.
    pub labels: Vec<u64>,
}

fn pass(
    bits: u32,
    base: u64,
    known: Option<Vec<u64>>,
    gen: &dyn Fn(&mut Asm) -> AsmResult,
) -> Result<Chunk, String> {
    let mut asm = Asm {
        a: CodeAssembler::new(bits).map_err(|e| e.to_string())?,
        labels: Vec::new(),
        known,
    };
    gen(&mut asm).map_err(|e| format!("generating code: {e}"))?;
    let r = asm
        .a
        .assemble_options(base, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
        .map_err(|e| format!("assembling: {e}"))?;
    let labels = asm
        .labels
        .iter()
        .map(|l| r.label_ip(l).unwrap_or(PLACEHOLDER))
        .collect();
    Ok(Chunk {
        base,
        bytes: r.inner.code_buffer,
        labels,
    })
}

/// Assembles `gen` as `bits`-bit code at `base`, in two passes.
pub fn build(bits: u32, base: u64, gen: impl Fn(&mut Asm) -> AsmResult) -> Result<Chunk, String> {
    let first = pass(bits, base, None, &gen)?;
    let second = pass(bits, base, Some(first.labels.clone()), &gen)?;
    if first.labels != second.labels {
        return Err(
            "code layout changed between passes: use fixed-size encodings for label addresses"
                .into(),
        );
    }
    Ok(second)
}

/// Emits `bytes` into the code stream (jumped over) and code that copies
/// them to physical `addr`: how 16- and 32-bit code assembled apart with
/// [`build`] (an L2's, say) reaches its load address (clobbers RCX, RSI,
/// RDI).
pub fn place(a: &mut Asm, addr: u64, bytes: &[u8]) -> AsmResult {
    use iced_x86::code_asm::{ecx, ptr, rdi, rsi};
    let mut data = a.label();
    let mut over = a.label();
    a.jmp(over.l)?;
    a.set(&mut data)?;
    a.db(bytes)?;
    a.set(&mut over)?;
    a.cld()?;
    a.lea(rsi, ptr(data.l))?;
    a.mov(rdi, addr)?;
    a.mov(ecx, bytes.len() as u32)?;
    a.rep().movsb()
}
