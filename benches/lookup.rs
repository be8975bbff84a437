//! Revocation look-up cost from 10 to 1,000,000 entries, the cost of
//! building a 1,000,000-entry table, and of loading a 1,000,000-entry CRL
//! (made once, kept under the target directory).
//!
//!     cargo bench --no-default-features --features testca --bench lookup
//!
//! Without the `nginx` feature the crate links without nginx. Figures are
//! printed, never asserted: `scripts/bench` runs this and keeps the output.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ngx_http_mtls_module::revocation::testca::{CrlSpec, Rng, TestCa};
use ngx_http_mtls_module::revocation::{crl, IssuerKey, Kind, Table, TableBuilder};
use openssl::x509::X509;

const QUERIES: usize = 1 << 16;
const LOOKUPS: usize = 1_000_000;
const RUNS: usize = 5;
const BIG: usize = 1_000_000;

fn time(f: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn main() {
    let issuer: IssuerKey = [0x5a; 32];
    let mut rng = Rng(0x853c_49e6_748f_ea9b);

    println!(
        "is_revoked: best of {RUNS} runs of {LOOKUPS} look-ups, {QUERIES} distinct 16-byte serials"
    );
    println!(
        "{:>10} {:>12} {:>8} {:>8}",
        "entries", "table bytes", "hit ns", "miss ns"
    );
    let mut rows = Vec::new();
    for n in [10, 1_000, 100_000, BIG] {
        let serials: Vec<[u8; 16]> = (0..n).map(|_| rng.serial()).collect();
        let mut builder = TableBuilder::with_capacity(Kind::Crl, n);
        for serial in &serials {
            builder.add_revoked(&issuer, serial);
        }
        let bytes = builder.finish().expect("table");
        let table = Table::new(&bytes).expect("table");
        let hits: Vec<[u8; 16]> = (0..QUERIES)
            .map(|_| serials[rng.next_u64() as usize % n])
            .collect();
        let misses: Vec<[u8; 16]> = (0..QUERIES).map(|_| rng.serial()).collect();
        // The best of RUNS runs: the machine may be busy with other work.
        let cell = |queries: &[[u8; 16]]| {
            let mut found = 0;
            let best = (0..RUNS)
                .map(|_| {
                    time(&mut || {
                        for i in 0..LOOKUPS {
                            let serial = black_box(&queries[i % QUERIES]);
                            found += usize::from(black_box(&table).is_revoked(&issuer, serial));
                        }
                    })
                })
                .min()
                .unwrap_or_default();
            (ns(best) / LOOKUPS as f64, found)
        };
        let ((hit, found), (miss, false_hits)) = (cell(&hits), cell(&misses));
        // Not a timing: a benchmark that found the wrong answer measured
        // nothing.
        assert_eq!((found, false_hits), (RUNS * LOOKUPS, 0));
        println!("{n:>10} {:>12} {hit:>8.1} {miss:>8.1}", bytes.len());
        rows.push((hit, miss));
    }
    let (small, big) = (rows[0], rows[rows.len() - 1]);
    println!(
        "ratio 1,000,000 / 10: hit {:.2}, miss {:.2}",
        big.0 / small.0,
        big.1 / small.1
    );

    let serials: Vec<[u8; 16]> = (0..BIG).map(|_| rng.serial()).collect();
    let build = time(&mut || {
        let mut builder = TableBuilder::with_capacity(Kind::Crl, BIG);
        for serial in &serials {
            builder.add_revoked(&issuer, serial);
        }
        black_box(builder.finish().expect("table"));
    });
    println!(
        "\nbuild and serialize {BIG} entries: {} ms",
        build.as_millis()
    );

    let (path, ca) = big_crl(BIG, &mut rng);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut loaded = None;
    let cas = std::slice::from_ref(&ca);
    let load = time(&mut || loaded = Some(crl::load(&path, cas).expect("CRL")));
    let Some(loaded) = loaded else { return };
    assert_eq!(loaded.crls[0].info.entries, BIG as u64);
    println!(
        "load a {BIG}-entry CRL ({} MB DER; verify, read, build): {} ms; peak RSS of this process: {} MB",
        size >> 20,
        load.as_millis(),
        peak_rss_mb()
    );
    let new = time(&mut || {
        black_box(Table::new(black_box(&loaded.table)).expect("table"));
    });
    let open = time(&mut || {
        black_box(Table::open(black_box(&loaded.table)).expect("table"));
    });
    println!(
        "on its {} MB table: Table::new (checks every bucket) {:.0} us, Table::open (what a worker does per new generation) {:.0} ns",
        loaded.table.len() >> 20,
        ns(new) / 1e3,
        ns(open)
    );
}

/// A CRL file with `n` entries and its CA, generated once and kept under
/// the target directory.
fn big_crl(n: usize, rng: &mut Rng) -> (PathBuf, X509) {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        Into::into,
    );
    let dir = target.join("revocation-bench");
    let (file, ca) = (
        dir.join(format!("crl-{n}.der")),
        dir.join(format!("ca-{n}.pem")),
    );
    let cached = std::fs::read(&ca)
        .ok()
        .and_then(|pem| X509::from_pem(&pem).ok())
        .filter(|ca| crl::load(&file, std::slice::from_ref(ca)).is_ok());
    if let Some(cert) = cached {
        return (file, cert);
    }
    let start = Instant::now();
    let test_ca = TestCa::new("Bench CA");
    let der = test_ca.crl(&CrlSpec {
        serials: (0..n).map(|_| rng.serial().to_vec()).collect(),
        ..CrlSpec::default()
    });
    std::fs::create_dir_all(&dir).expect("target directory");
    std::fs::write(&file, der).expect("CRL file");
    std::fs::write(&ca, test_ca.cert.to_pem().expect("PEM")).expect("CA file");
    println!(
        "(made {} in {} ms)",
        file.display(),
        start.elapsed().as_millis()
    );
    (file, test_ca.cert)
}

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb >> 10)
}
