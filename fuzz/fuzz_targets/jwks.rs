//! Fuzz target `jwks`: see `tollgate_fuzz_harness::jwks`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz_harness::jwks(data));
