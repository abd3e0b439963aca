//! Write the benches' generated clickstream NDJSON to a file: `gen-clickstream OUT [MB]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: gen-clickstream OUT [MB]");
        std::process::exit(2);
    };
    let mb: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100);
    let data = sluice_benches::clickstream_ndjson(mb << 20);
    if let Err(e) = std::fs::write(&out, &data) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
    println!(
        "{out}: {} bytes, {} records",
        data.len(),
        sluice_benches::count_lines(&data)
    );
}
