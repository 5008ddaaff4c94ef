#![no_main]

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

libfuzzer_sys::fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one Silt catches on purpose (the
        // Parquet decoder's, turned into errors). Restore the default hook: a panic that
        // escapes the target still aborts through libfuzzer-sys's own catch.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| silt_fuzz::auth_input(data)
);
