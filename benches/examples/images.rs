//! Writes a workload's Multiboot image and its Bochs disk image, to run the
//! comparison's emulators by hand:
//! `cargo run --release -p nestemu-benches --example images -- WORKLOAD SIZE DIR`
//! with WORKLOAD one of a, b, c, d, e, f (the letters of `workloads`) and SIZE
//! its iteration count (loop iterations, memory rounds or calls).

use nestemu_benches::compare::bochs_disk;
use nestemu_benches::workloads as w;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [load, size, dir] = &args[..] else {
        eprintln!("usage: images WORKLOAD SIZE DIR");
        std::process::exit(2);
    };
    let n: u64 = size.parse().expect("SIZE is a number");
    let p = match load.as_str() {
        "a" => w::integer_loop(n),
        "b" => w::memory(n),
        "c" => w::memory_ept(n),
        "d" => w::memory_npt(n),
        "e" => w::vmcall_loop(n),
        "f" => w::vmmcall_loop(n),
        _ => {
            eprintln!("unknown workload {load}");
            std::process::exit(2);
        }
    };
    let built = p.build().expect("the workload builds");
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("the directory");
    std::fs::write(dir.join("image.bin"), &built.image).expect("the image");
    let (disk, cylinders) = bochs_disk(&built.image).expect("the disk image");
    std::fs::write(dir.join("disk.img"), disk).expect("the disk");
    println!("{cylinders}");
}
