//! Live revocation, the part without nginx: CRL files and deny lists read
//! into immutable look-up tables (`table`) that one process builds and every
//! worker probes in place, in shared memory. Loading (`crl`, `denylist`)
//! checks a whole file and yields a table or an error, never a partial one.
//! A certificate's keys in those tables are its `link`.

pub mod cdp;
pub mod crl;
pub mod denylist;
pub mod link;
pub mod table;
#[cfg(any(test, feature = "testca"))]
pub mod testca;

pub use crl::{check_newer, issuer_key, CrlError, CrlSummary, LoadedCrls};
pub use denylist::{DenyListError, LoadedDenyList};
pub use link::{rebuild_chain, Link};
pub use table::{
    CrlNumber, IssuerInfo, IssuerKey, Key, Kind, Scope, Table, TableBuilder, TableError,
};
