//! `svm-model`: AMD-V (AMD APM Vol. 2 chapter 15) as pure semantics over data.
//! Given a VMCB and the state handed in, it decides what the hardware does and
//! returns it as a value. `emu` binds it to the interpreter.
#![forbid(unsafe_code)]
