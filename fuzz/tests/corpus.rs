//! The saved corpus (`fuzz/corpus/<target>/`: the seeds, the inputs AFL found new coverage with,
//! and every input that once crashed a target) replayed through the functions the fuzzers call.
//! Each must return; a panic here is a fuzz crash come back. `make fuzz` adds to the corpus.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_returns() {
    for (name, target) in fuzz::TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "corpus/{name} is empty");
        for path in files {
            let data = std::fs::read(&path).unwrap();
            // The panic message names the target; the file is printed first for a rerun.
            eprintln!("{name}: {}", path.display());
            target(&data);
        }
    }
}

#[test]
fn the_thumbnail_seeds_render() {
    // The seeds are real objects: if they stopped rendering, the target would be fuzzing an
    // error path only.
    let files = corpus("thumbnail");
    let seeds: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .collect();
    assert!(seeds.len() >= 2, "thumbnail seeds: {seeds:?}");
    for path in seeds {
        let data = std::fs::read(path).unwrap();
        let object = fuzz::thumbnail_object(&data).expect("a seed describes an object");
        if let Err(e) = appliance::thumbnail::render(&object) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn the_stored_file_seeds_render_from_their_first_frame() {
    let seeds = corpus("stored_file");
    assert!(seeds.len() >= 3, "stored_file seeds: {seeds:?}");
    for path in seeds.iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
    }) {
        let data = std::fs::read(path).unwrap();
        let object = appliance::thumbnail::first_frame::read(std::io::Cursor::new(data))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        appliance::thumbnail::render(&object).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
