//! Fuzz target `wire`: see `tollgate_fuzz_harness::wire`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz_harness::wire(data));
