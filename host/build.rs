//! Link the binaries with packed relative relocations (DT_RELR): the
//! static-pie engine has about 54,000 of them, whose 1.3 MB table the start
//! of every hook would otherwise fault in page by page. glibc 2.36 and
//! binutils 2.38 know the format.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
