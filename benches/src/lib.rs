//! Inputs for the Sluice benches: deterministic generated data shaped like real workloads.

/// Generate about `bytes` of clickstream NDJSON (the shape of the README example), deterministic.
pub fn clickstream_ndjson(bytes: usize) -> Vec<u8> {
    const PAGES: [&str; 7] = [
        "/",
        "/search",
        "/cart",
        "/checkout",
        "/product/42",
        "/product/7",
        "/help",
    ];
    const KINDS: [&str; 6] = ["view", "view", "view", "click", "click", "purchase"];
    const GEO: [(&str, &str); 4] = [
        ("DE", "Berlin"),
        ("JP", "Tokyo"),
        ("BR", "Sao Paulo"),
        ("US", "Seattle"),
    ];
    let mut out = Vec::with_capacity(bytes + 512);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut i = 0u64;
    while out.len() < bytes {
        let r = next();
        let (cc, city) = GEO[(r % 4) as usize];
        let line = format!(
            "{{\"ts\":\"2026-11-22T{:02}:{:02}:{:02}.{:03}Z\",\"user_id\":\"u{:06}\",\"session_id\":\"s{:08x}\",\"event_type\":\"{}\",\"page\":\"{}\",\"referrer\":\"https://example.com/ref/{}\",\"latency_ms\":{},\"bytes\":{},\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0\",\"geo\":{{\"country\":\"{cc}\",\"city\":\"{city}\"}}}}\n",
            (r >> 8) % 24,
            (r >> 16) % 60,
            (r >> 24) % 60,
            (r >> 32) % 1000,
            (r >> 20) % 100_000,
            next() as u32,
            KINDS[((r >> 40) % 6) as usize],
            PAGES[((r >> 44) % 7) as usize],
            i % 1000,
            (r >> 48) % 3000,
            (r >> 12) % 90_000,
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

/// Lines in generated NDJSON.
pub fn count_lines(data: &[u8]) -> u64 {
    data.iter().filter(|b| **b == b'\n').count() as u64
}
