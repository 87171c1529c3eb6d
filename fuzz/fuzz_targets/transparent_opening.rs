#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzzing::transparent_opening(data));
