//! Writes the seeds of the `table` target: the tables the loaders make
//! from the seeds of the `denylist` and `crl` targets.
//! Usage: seed-tables CORPUS_DIR (the `fuzz/corpus` directory).

use std::fs;
use std::path::Path;

use ngx_http_mtls_module::revocation::denylist;
use ngx_http_mtls_module_fuzz::{corpus_files, crl_input};

fn main() {
    let corpus = std::env::args()
        .nth(1)
        .expect("usage: seed-tables CORPUS_DIR");
    let corpus = Path::new(&corpus);
    let out = corpus.join("table");
    fs::create_dir_all(&out).unwrap();
    let mut written = 0;
    for (source, kind) in [("denylist", "deny"), ("crl", "crl")] {
        for input in corpus_files(&corpus.join(source)) {
            let data = fs::read(&input).unwrap();
            let table = match kind {
                "deny" => denylist::parse(&data, "seed").ok().map(|l| l.table),
                _ => crl_input(&data).and_then(Result::ok).map(|l| l.table),
            };
            if let Some(table) = table {
                let name = input.file_name().unwrap().to_string_lossy();
                fs::write(out.join(format!("{kind}-{name}")), table).unwrap();
                written += 1;
            }
        }
    }
    println!("{written} table seeds in {}", out.display());
}
