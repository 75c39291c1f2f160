//! Tells the tests whether libseccomp (Debian's libseccomp-dev) can be linked: the tests that
//! compare scpc with libseccomp's own compiler link it, and without it they are left out and
//! `tests/requirements.rs` fails naming the package, instead of a linker error. The library
//! and the binary never need it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(scpc_libseccomp)");
    println!("cargo::rerun-if-env-changed=LIBSECCOMP_LIB_PATH");
    let mut dirs: Vec<String> = std::env::var("LIBSECCOMP_LIB_PATH").into_iter().collect();
    dirs.extend(["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"].map(String::from));
    for dir in &dirs {
        println!("cargo::rerun-if-changed={dir}/libseccomp.so");
    }
    if dirs.iter().any(|d| std::path::Path::new(d).join("libseccomp.so").exists()) {
        println!("cargo::rustc-cfg=scpc_libseccomp");
    }
}
