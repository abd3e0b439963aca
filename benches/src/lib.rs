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

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// About `bytes` of ALB access log lines (current field set).
pub fn alb_log(bytes: usize) -> Vec<u8> {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    let mut out = Vec::with_capacity(bytes + 1024);
    while out.len() < bytes {
        let x = r.next();
        let line = format!(
            "https 2026-11-22T10:{:02}:{:02}.{:06}Z app/shop-lb/50dc6c495c0c9188 192.0.2.{}:{} 10.0.0.{}:80 0.{:03} 0.{:03} 0.000 {} 200 {} {} \"GET https://shop.example.com:443/p/{}?q={} HTTP/1.1\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/shop/73e2d6bc24d8a067 \"Root=1-58337281-{:024x}\" \"shop.example.com\" \"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012\" 1 2026-11-22T10:00:00.000000Z \"forward\" \"-\" \"-\" \"10.0.0.1:80\" \"200\" \"-\" \"-\"\n",
            (x >> 8) % 60,
            (x >> 16) % 60,
            (x >> 20) % 1_000_000,
            x % 255,
            1024 + (x >> 30) % 60000,
            (x >> 5) % 255,
            (x >> 40) % 1000,
            (x >> 44) % 1000,
            [200, 200, 200, 404, 500][((x >> 50) % 5) as usize],
            (x >> 12) % 4000,
            (x >> 22) % 90000,
            (x >> 33) % 1000,
            (x >> 3) % 97,
            r.next() as u128,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// About `bytes` of VPC Flow Logs (default v2 format, with the header line).
pub fn vpc_flow_log(bytes: usize) -> Vec<u8> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n".to_vec();
    while out.len() < bytes {
        let x = r.next();
        let line = format!(
            "2 123456789010 eni-{:017x} 172.31.{}.{} 10.0.{}.{} {} {} 6 {} {} {} {} {} OK\n",
            x >> 8,
            x % 255,
            (x >> 8) % 255,
            (x >> 16) % 255,
            (x >> 24) % 255,
            1024 + (x >> 32) % 60000,
            [22, 80, 443, 3389][((x >> 48) % 4) as usize],
            1 + (x >> 20) % 100,
            40 + (x >> 28) % 100_000,
            1_795_341_600 + (x >> 40) % 3600,
            1_795_341_660 + (x >> 40) % 3600,
            if x.is_multiple_of(7) {
                "REJECT"
            } else {
                "ACCEPT"
            },
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// About `bytes` of CSV with a header: order exports with quoted fields.
pub fn orders_csv(bytes: usize) -> Vec<u8> {
    let mut r = Rng(0xD1B5_4A32_D192_ED03);
    let mut out = b"order_id,customer,amount,currency,placed_at,express\n".to_vec();
    let mut id = 1u64;
    while out.len() < bytes {
        let x = r.next();
        let line = format!(
            "{id},\"Customer {}, Ltd\",{}.{:02},{},2026-11-22T{:02}:{:02}:{:02}Z,{}\n",
            x % 10_000,
            (x >> 16) % 5000,
            (x >> 8) % 100,
            ["EUR", "USD", "GBP"][((x >> 40) % 3) as usize],
            (x >> 24) % 24,
            (x >> 32) % 60,
            (x >> 44) % 60,
            x.is_multiple_of(2)
        );
        out.extend_from_slice(line.as_bytes());
        id += 1;
    }
    out
}

/// About `bytes` of a CloudTrail log file (one `{"Records":[…]}` document).
pub fn cloudtrail_json(bytes: usize) -> Vec<u8> {
    let mut r = Rng(0xA076_1D64_78BD_642F);
    let mut out = b"{\"Records\":[".to_vec();
    let mut first = true;
    while out.len() < bytes {
        let x = r.next();
        if !first {
            out.push(b',');
        }
        first = false;
        let rec = format!(
            "{{\"eventVersion\":\"1.08\",\"userIdentity\":{{\"type\":\"IAMUser\",\"principalId\":\"AIDA{:016X}\",\"arn\":\"arn:aws:iam::123456789012:user/u{}\",\"accountId\":\"123456789012\",\"accessKeyId\":\"AKIA{:016X}\",\"userName\":\"u{}\"}},\"eventTime\":\"2026-11-22T{:02}:{:02}:{:02}Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"{}\",\"awsRegion\":\"us-east-2\",\"sourceIPAddress\":\"192.0.2.{}\",\"userAgent\":\"[aws-cli/2.15.0 Python/3.11.6]\",\"requestParameters\":{{\"bucketName\":\"b\",\"key\":\"k/{}\"}},\"responseElements\":null,\"requestID\":\"{:016X}\",\"eventID\":\"{:032x}\",\"readOnly\":{},\"eventType\":\"AwsApiCall\",\"managementEvent\":false,\"recipientAccountId\":\"123456789012\",\"eventCategory\":\"Data\"}}",
            x,
            x % 100,
            x >> 3,
            x % 100,
            (x >> 8) % 24,
            (x >> 16) % 60,
            (x >> 24) % 60,
            ["GetObject", "PutObject", "DeleteObject"][((x >> 40) % 3) as usize],
            x % 255,
            x % 100_000,
            x >> 5,
            r.next() as u128,
            x.is_multiple_of(3),
        );
        out.extend_from_slice(rec.as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

/// A `width` × `height` 24-bit BMP with photo-like content (smooth gradients, blotches and grain),
/// deterministic: the source from which the benches make their JPEG photos.
pub fn photo_bmp(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let row = (width as usize * 3).div_ceil(4) * 4;
    let data_len = row * height as usize;
    let mut out = Vec::with_capacity(54 + data_len);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&((54 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(width as i32).to_le_bytes());
    out.extend_from_slice(&(height as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // no compression
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    let mut state = 0x9E37_79B9u32 ^ seed;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state & 0x7) as i32 - 4
    };
    for y in 0..height {
        let start = out.len();
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let blot = ((fx * 23.0 + seed as f32).sin() * (fy * 17.0).cos() * 60.0) as i32;
            let px = [
                (fx * 200.0) as i32 + blot,
                (fy * 180.0) as i32 + 40 - blot / 2,
                ((fx + fy) * 110.0) as i32 + blot / 3,
            ];
            for c in px {
                out.push((c + noise()).clamp(0, 255) as u8);
            }
        }
        out.resize(start + row, 0);
    }
    out
}
