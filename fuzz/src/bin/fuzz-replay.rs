//! `fuzz-replay <target> FILE…`: runs inputs through a target outside AFL, with each one's time,
//! to triage what `make fuzz` saved under crashes/ and hangs/ (a panic shows its backtrace).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let Some(target) = fuzz::target(&name) else {
        eprintln!("usage: fuzz-replay <target> FILE…");
        std::process::exit(2);
    };
    for path in args {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let start = Instant::now();
        target(&data);
        println!("{:>10.3} ms  {path}", start.elapsed().as_secs_f64() * 1e3);
    }
}
