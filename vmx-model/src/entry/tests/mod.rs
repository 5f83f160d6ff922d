//! VM-entry tests: the known-good VMCS enters; every check, violated alone, gives
//! its architectural outcome and names itself.

mod cases;
mod flow;
mod seg_reference;
mod segs;
