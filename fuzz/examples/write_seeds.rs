//! Writes every target's seeds and kept regression cases into `DIR/<target>/`, the corpus
//! layout of `cargo fuzz`: `cargo run -p silt-fuzz --example write_seeds -- fuzz/libfuzzer/corpus`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/libfuzzer/corpus".into()),
    );
    let regressions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for (name, _) in silt_fuzz::TARGETS {
        let out = dir.join(name);
        std::fs::create_dir_all(&out)?;
        for (i, seed) in silt_fuzz::seeds::for_target(name).iter().enumerate() {
            std::fs::write(out.join(format!("seed-{i:03}")), seed)?;
        }
        if let Ok(cases) = std::fs::read_dir(regressions.join(name)) {
            for case in cases {
                let case = case?.path();
                if let Some(file) = case.file_name() {
                    std::fs::copy(&case, out.join(file))?;
                }
            }
        }
        println!("{}: seeds written to {}", name, out.display());
    }
    Ok(())
}
