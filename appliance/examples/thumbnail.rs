//! Renders the thumbnail of one DICOM file as the gateway does, a number of times, and prints
//! the time of each: the unit of work to profile when the thumbnail bench's ratio is poor.
//!
//!     cargo build --profile bench -p appliance --example thumbnail
//!     perf record -e cpu-clock target/release/examples/thumbnail FILE 5

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: thumbnail FILE [TIMES]");
    let times: usize = args
        .next()
        .map_or(1, |n| n.parse().expect("TIMES is a number"));
    for _ in 0..times {
        let started = Instant::now();
        let object = dicom_object::open_file(&path).expect("a DICOM file");
        let thumbnail = appliance::thumbnail::render(&object).expect("a thumbnail");
        println!(
            "{:.1} ms, {}×{}, {} bytes",
            started.elapsed().as_secs_f64() * 1000.0,
            thumbnail.width,
            thumbnail.height,
            thumbnail.jpeg.len()
        );
    }
}
