// The `cuda` binaries record NEEDED libcuda.so.1; giving the fake driver the
// same SONAME makes it a drop-in for the dynamic loader.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
}
