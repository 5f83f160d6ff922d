//! The built-in demo (`nestemu` with no arguments).

/// Runs the demo and returns the exit status.
pub fn run(cpu: &str) -> i32 {
    eprintln!("nestemu: the demo for --cpu {cpu} is not built yet");
    2
}
