//! `vmx-model`: Intel VT-x (SDM Vol. 3C chapters 24-33) as pure semantics over
//! data. Given a VMCS, the capability MSRs and the state handed in, it decides what
//! the hardware does and returns it as a value. `emu` binds it to the interpreter.
#![forbid(unsafe_code)]
