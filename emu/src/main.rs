//! The `nestemu` binary.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nestemu::cli::main_with_args(&args));
}
