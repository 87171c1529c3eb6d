#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzzing::dns_query(data));
