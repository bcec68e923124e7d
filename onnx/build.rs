//! Compiles ONNX's own schema (`proto/onnx.proto`, copied unchanged from the
//! `onnx` 1.23.2 wheel) into Rust types at build time. `protox` is a pure-Rust
//! protobuf compiler, so no `protoc` has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
