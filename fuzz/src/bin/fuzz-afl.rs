//! The AFL entry point: `fuzz-afl <target>` runs one target of [`fuzz::TARGETS`] in AFL's
//! persistent mode. Built only by `cargo afl build --features afl` (scripts/fuzz.sh).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = fuzz::target(&name) else {
        let names: Vec<&str> = fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: fuzz-afl <target>; targets: {}", names.join(" "));
        std::process::exit(2);
    };
    // No abort-on-panic hook: the thumbnailer catches a codec's panic and reports it as a decode
    // error (as it must in the gateway), and that is not a crash. A panic escaping a target
    // still aborts, which AFL records.
    afl::fuzz_nohook!(|data: &[u8]| target(data));
}
