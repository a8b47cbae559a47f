#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clearpaint_fuzz::harness::tokenizer(data));
