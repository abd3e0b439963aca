//! The `sluice` binary is linked as a position-dependent executable on Linux (glibc).
//!
//! Why: a position-independent `sluice` carries ~145 000 relative relocations (every pointer in
//! its vtables, string tables and panic locations), which the loader applies at every start,
//! copying ~600 pages of `.data.rel.ro` and reading a 3.4 MB relocation table: `sluice --version`
//! took 3.8 ms against 1.6 ms linked this way, and the Lambda cold start is mostly that (see the
//! README's "Cold start"). Resolved at link time, the relocations cost nothing at start.
//!
//! The cost: the executable's own code and data load at a fixed address (no ASLR for them; the
//! shared libraries, heap, stack and mappings stay randomised) — as Go binaries, the commonest
//! compiled Lambda functions, are linked by default. Build with `SLUICE_PIE=1` to keep the
//! position-independent default.
//!
//! The objects stay position-independent (rustc's default); only the final link differs, so no
//! dependency is rebuilt and the link arguments reach the `sluice` binary alone.

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_PIE");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if linux_gnu && std::env::var_os("SLUICE_PIE").is_none_or(|v| v.is_empty() || v == "0") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
