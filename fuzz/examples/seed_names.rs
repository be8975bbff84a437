//! Writes the seeds of the `name_der` target: the subject and issuer of
//! each certificate in the seeds of the `identity` target, as the
//! certificate encodes them, and a few names no tool makes.
//! Usage: seed-names CORPUS_DIR (the `fuzz/corpus` directory).

use std::fs;
use std::path::Path;

use ngx_http_mtls_module_fuzz::corpus_files;
use openssl::x509::X509;

fn main() {
    let corpus = std::env::args()
        .nth(1)
        .expect("usage: seed-names CORPUS_DIR");
    let corpus = Path::new(&corpus);
    let out = corpus.join("name_der");
    fs::create_dir_all(&out).unwrap();
    let mut written = 0;
    for path in corpus_files(&corpus.join("identity")) {
        let Ok(cert) = X509::from_der(&fs::read(&path).unwrap()) else {
            continue;
        };
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (part, name) in [
            ("subject", cert.subject_name()),
            ("issuer", cert.issuer_name()),
        ] {
            fs::write(out.join(format!("{stem}-{part}")), name.to_der().unwrap()).unwrap();
            written += 1;
        }
    }
    // CN=al+ice as a constructed UTF8String; a value with a high tag
    // number; a long-form length with a leading zero.
    let hand: [(&str, &[u8]); 3] = [
        (
            "constructed",
            b"\x30\x14\x31\x12\x30\x10\x06\x03\x55\x04\x03\x2c\x09\x0c\x02al\x0c\x03ice",
        ),
        (
            "high-tag",
            b"\x30\x0e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x9f\x81\x00\x01x",
        ),
        (
            "long-length",
            b"\x30\x0e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x0c\x82\x00\x01x",
        ),
    ];
    for (name, der) in hand {
        fs::write(out.join(format!("hand-{name}")), der).unwrap();
        written += 1;
    }
    println!("seed-names: {written} names in {}", out.display());
}
