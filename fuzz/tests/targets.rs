//! The fuzz targets on the stable toolchain: every seed and every kept regression case
//! (`fuzz/regressions/<target>/`, inputs fuzzing once found failing), then a seeded round
//! of mutations of them. `SILT_FUZZ_ITERATIONS` and `SILT_FUZZ_SEED` make a longer or
//! different round; a failing input is written out so it can become a regression case.

use std::path::{Path, PathBuf};

use silt_fuzz::{TARGETS, kafka_still_serves, mutate::mutate, seeds};

// As in the `silt` binary: a request claiming a huge array reserves address space that is
// never touched, which jemalloc grants and the system allocator may refuse by aborting.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("known target")
}

fn regression_cases(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut cases: Vec<_> = entries
        .map(|e| e.expect("regression entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("regression case");
            (p, bytes)
        })
        .collect();
    cases.sort();
    cases
}

/// Runs one input; a panic is reported with the input saved for replay.
fn run_one(name: &str, input: &[u8]) -> Result<(), String> {
    let run = target(name);
    std::panic::catch_unwind(|| run(input)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", fastrand::u64(..)));
        let _ = std::fs::write(&path, input);
        format!("{name}: {message} (input saved to {})", path.display())
    })
}

fn replay(name: &str) {
    let mut inputs: Vec<(String, Vec<u8>)> = seeds::for_target(name)
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("seed {i}"), s))
        .collect();
    inputs.extend(
        regression_cases(name)
            .into_iter()
            .map(|(p, b)| (p.display().to_string(), b)),
    );
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|(label, input)| run_one(name, input).err().map(|e| format!("{label}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn mutation_round(name: &str, default_iterations: usize) {
    let iterations = std::env::var("SILT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iterations);
    let seed = std::env::var("SILT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_126);
    let mut corpus = seeds::for_target(name);
    corpus.extend(regression_cases(name).into_iter().map(|(_, b)| b));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut failures = Vec::new();
    for _ in 0..iterations {
        let mut input = corpus[rng.usize(..corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        if let Err(e) = run_one(name, &input) {
            failures.push(e);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}, {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kafka_request_seeds_and_regressions() {
    replay("kafka_request");
    kafka_still_serves().expect("the node serves after the replay");
}

#[test]
fn kafka_request_mutations() {
    mutation_round("kafka_request", 10_000);
    kafka_still_serves().expect("the node serves after the mutations");
}

#[test]
fn segment_object_seeds_and_regressions() {
    replay("segment_object");
}

#[test]
fn segment_object_mutations() {
    mutation_round("segment_object", 3000);
}

#[test]
fn http_body_seeds_and_regressions() {
    replay("http_body");
}

#[test]
fn http_body_mutations() {
    mutation_round("http_body", 10_000);
}

#[test]
fn auth_input_seeds_and_regressions() {
    replay("auth_input");
}

#[test]
fn auth_input_mutations() {
    mutation_round("auth_input", 4000);
}
