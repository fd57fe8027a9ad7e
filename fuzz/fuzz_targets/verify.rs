//! Fuzz target `verify`: see `tollgate_fuzz_harness::verify`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz_harness::verify(data));
