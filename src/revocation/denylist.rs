//! Deny lists: text files of serial numbers and fingerprints, for revoking
//! one certificate now, without running a CA.
//!
//! ```text
//! # laptop stolen 2025-03-02
//! 1A:2B:3C:4D
//! sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   # bob
//! ```
//!
//! One entry per line: a serial number in hex (colons, case and leading
//! zeros ignored), denied whatever the issuer, or `sha256:` and the
//! certificate's fingerprint. `#` starts a comment at the start of a line
//! or after whitespace; blank lines are allowed; CRLF line ends too. One bad
//! line rejects the whole file.
//!
//! A text file has no end marker: a write cut short can leave a shorter,
//! valid-looking list, and a serial cut in the middle is another valid
//! serial. Replace the file atomically instead: write a new file in the same
//! directory and `rename(2)` it over the old one (`mv`, not `cp`;
//! Kubernetes does the same for mounted Secrets and ConfigMaps). An empty
//! file, what a reader sees right after `open(O_TRUNC)`, is rejected: a list
//! with nothing to deny is written with at least a comment or a newline.

use std::path::Path;

use super::table::{Kind, TableBuilder, TableError};
use crate::identity::fingerprint::parse_fingerprint;
use crate::identity::serial::Serial;

#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    #[error("cannot read deny list \"{file}\": {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("deny list \"{file}\" is empty")]
    Empty { file: String },
    #[error("deny list \"{file}\" line {line}: {reason}")]
    Line {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("deny list \"{file}\": {source}")]
    Table { file: String, source: TableError },
}

/// A deny list read into a table.
#[derive(Debug)]
pub struct LoadedDenyList {
    /// A [`super::Table`] of kind [`Kind::DenyList`].
    pub table: Vec<u8>,
    /// Distinct serials.
    pub serials: usize,
    /// Distinct fingerprints.
    pub fingerprints: usize,
}

impl LoadedDenyList {
    pub fn entries(&self) -> usize {
        self.serials + self.fingerprints
    }
}

/// Reads a deny list file. Write such files atomically, with `rename(2)`:
/// a reader cannot tell a list cut short from a shorter list.
pub fn load(path: &Path) -> Result<LoadedDenyList, DenyListError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(data) => parse(&data, &file),
        Err(source) => Err(DenyListError::Read { file, source }),
    }
}

/// Reads a deny list from `data`, read from `file` (named in errors).
pub fn parse(data: &[u8], file: &str) -> Result<LoadedDenyList, DenyListError> {
    if data.is_empty() {
        return Err(DenyListError::Empty { file: file.into() });
    }
    let mut serials = Vec::new();
    let mut fingerprints = Vec::new();
    // A byte order mark, as some Windows editors write.
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let bad = |reason: String| DenyListError::Line {
            file: file.into(),
            line: i + 1,
            reason,
        };
        let line = std::str::from_utf8(line).map_err(|_| bad("not valid UTF-8".into()))?;
        let entry = strip_comment(line).trim();
        if entry.is_empty() {
            continue;
        }
        if entry.contains(char::is_whitespace) {
            return Err(bad(format!(
                "one entry per line expected, found \"{entry}\""
            )));
        }
        let is_fingerprint = entry
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sha256:"));
        if is_fingerprint {
            let fingerprint = parse_fingerprint(entry)
                .map_err(|e| bad(format!("invalid fingerprint \"{entry}\": {e}")))?;
            fingerprints.push(fingerprint);
        } else {
            let serial = Serial::parse(entry)
                .map_err(|e| bad(format!("invalid serial \"{entry}\": {e}")))?;
            serials.push(serial);
        }
    }
    serials.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    serials.dedup();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let mut builder =
        TableBuilder::with_capacity(Kind::DenyList, serials.len() + fingerprints.len());
    for serial in &serials {
        builder.add_serial(serial.as_bytes());
    }
    for fingerprint in &fingerprints {
        builder.add_fingerprint(fingerprint);
    }
    let table = builder.finish().map_err(|source| DenyListError::Table {
        file: file.into(),
        source,
    })?;
    Ok(LoadedDenyList {
        table,
        serials: serials.len(),
        fingerprints: fingerprints.len(),
    })
}

/// The line without its comment: from a `#` that starts the line or
/// follows whitespace.
fn strip_comment(line: &str) -> &str {
    let mut previous = None;
    for (at, c) in line.char_indices() {
        if c == '#' && previous.map_or(true, char::is_whitespace) {
            return &line[..at];
        }
        previous = Some(c);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::Table;

    const FP: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn error(text: &str) -> String {
        parse(text.as_bytes(), "deny.txt").unwrap_err().to_string()
    }

    fn serial(text: &str) -> Serial {
        Serial::parse(text).unwrap()
    }

    #[test]
    fn entries_and_comments() {
        let text = format!(
            "# stolen laptops\n\n1A:2B:3C\n  00ff  # bob, trailing comment\n\t{}\r\n#{FP}\n001a2b3c\nSHA256:{} \n7",
            FP.to_uppercase().replace("SHA256", "sha256"),
            "AB:".repeat(31) + "AB",
        );
        let loaded = parse(text.as_bytes(), "deny.txt").unwrap();
        assert_eq!(
            (loaded.serials, loaded.fingerprints, loaded.entries()),
            (3, 2, 5)
        );
        let table = Table::new(&loaded.table).unwrap();
        assert_eq!((table.kind(), table.len()), (Kind::DenyList, 5));
        for yes in ["1a2b3c", "FF", "00:FF", "7"] {
            assert!(table.denies_serial(serial(yes).as_bytes()), "{yes}");
        }
        for no in ["1a2b", "ff00", "0"] {
            assert!(!table.denies_serial(serial(no).as_bytes()), "{no}");
        }
        assert!(table.denies_fingerprint(&parse_fingerprint(FP).unwrap()));
        assert!(table.denies_fingerprint(&[0xab; 32]));
        assert!(!table.denies_fingerprint(&[0xac; 32]));
    }

    #[test]
    fn byte_order_mark() {
        let loaded = parse(b"\xef\xbb\xbf1A2B\r\n", "deny.txt").unwrap();
        assert_eq!(loaded.serials, 1);
        assert!(Table::new(&loaded.table)
            .unwrap()
            .denies_serial(&[0x1a, 0x2b]));
    }

    #[test]
    fn nothing_to_deny() {
        for text in ["\n", "# nobody\n", "  \r\n\r\n", "#"] {
            let loaded = parse(text.as_bytes(), "deny.txt").unwrap();
            assert_eq!(loaded.entries(), 0, "{text:?}");
            assert!(Table::new(&loaded.table).unwrap().is_empty());
        }
        assert_eq!(error(""), "deny list \"deny.txt\" is empty");
    }

    #[test]
    fn bad_lines() {
        let cases = [
            ("1A\nzz\n", "line 2: invalid serial \"zz\": not a hexadecimal number"),
            ("1A\n\n12#3\n", "line 3: invalid serial \"12#3\": not a hexadecimal number"),
            ("::\n", "line 1: invalid serial \"::\": empty value"),
            (
                "sha256:abcd\n",
                "line 1: invalid fingerprint \"sha256:abcd\": must be \"sha256:\" followed by 64 hexadecimal digits",
            ),
            ("1A 2B\n", "line 1: one entry per line expected, found \"1A 2B\""),
            ("0x1A\n", "line 1: invalid serial \"0x1A\": not a hexadecimal number"),
            ("-1\n", "line 1: invalid serial \"-1\": not a hexadecimal number"),
        ];
        for (text, want) in cases {
            assert_eq!(
                error(text),
                format!("deny list \"deny.txt\" {want}"),
                "{text:?}"
            );
        }
        let e = parse(b"1A\n\xff\xfe\n", "deny.txt")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "deny list \"deny.txt\" line 2: not valid UTF-8");
    }

    #[test]
    fn files() {
        let dir = std::env::temp_dir().join(format!("mtls-deny-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deny.txt");
        std::fs::write(&path, "1A2B\n").unwrap();
        assert_eq!(load(&path).unwrap().serials, 1);
        let missing = dir.join("missing.txt");
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot read deny list \"{}\": ",
                missing.display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn comments() {
        assert_eq!(strip_comment("# all"), "");
        assert_eq!(strip_comment("1A # x # y"), "1A ");
        assert_eq!(strip_comment("1A\t#x"), "1A\t");
        assert_eq!(strip_comment("1A#x"), "1A#x");
        assert_eq!(strip_comment("1A"), "1A");
    }
}
