#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = lasagna_format::Model::parse(data); });
