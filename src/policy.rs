//! The request-time decision: a compiled policy and the peer certificate in,
//! allow or a reason to deny out. Pure logic, no nginx types.
//!
//! Every look-up is a hash-set probe, so a policy with 100,000 names costs
//! the same per request as a policy with one.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::hex::{Fingerprint, Serial};
use crate::identity::dn::Dn;
use crate::identity::san::{self, SanRule};
use crate::identity::spiffe::{SpiffeId, SpiffePattern};
use crate::identity::Identity;

/// Why a request was denied; `as_str` is the `$mtls_reason` token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NoCert,
    Unverified,
    BadCert,
    SerialDenied,
    Revoked,
    CrlMissing,
    CrlStale,
    DenyListMissing,
    Issuer,
    NotAllowed,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::NoCert,
        Reason::Unverified,
        Reason::BadCert,
        Reason::SerialDenied,
        Reason::Revoked,
        Reason::CrlMissing,
        Reason::CrlStale,
        Reason::DenyListMissing,
        Reason::Issuer,
        Reason::NotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoCert => "no_cert",
            Reason::Unverified => "unverified",
            Reason::BadCert => "bad_cert",
            Reason::SerialDenied => "serial_denied",
            Reason::Revoked => "revoked",
            Reason::CrlMissing => "crl_missing",
            Reason::CrlStale => "crl_stale",
            Reason::DenyListMissing => "deny_list_missing",
            Reason::Issuer => "issuer",
            Reason::NotAllowed => "not_allowed",
        }
    }
}

/// What the TLS connection tells about the client.
pub enum Peer<'a> {
    NoCert,
    /// A certificate whose verification failed (possible with
    /// `ssl_verify_client optional_no_ca`).
    Unverified,
    /// A certificate the module cannot look at.
    Unreadable,
    Verified(&'a dyn Certificate),
}

/// A verified certificate, whose identity is read only where a rule needs
/// it: `None` where the module cannot read it.
pub trait Certificate {
    fn identity(&self) -> Option<&Identity>;
}

impl Certificate for Identity {
    fn identity(&self) -> Option<&Identity> {
        Some(self)
    }
}

/// The identity rules of one configuration level: `mtls_allow_cn`,
/// `mtls_allow_dn`, `mtls_allow_san`, `mtls_allow_spiffe` and
/// `mtls_allow_fingerprint`, OR'ed together.
#[derive(Clone, Debug, Default)]
pub struct IdentityRules {
    cns: HashSet<String>,
    dns: HashSet<Dn>,
    san_dns: HashSet<String>,
    san_dns_wildcard: HashSet<String>,
    san_email: HashSet<String>,
    san_uri: HashSet<String>,
    /// Networks as (masked address, prefix length); `ip_prefixes` lists the
    /// lengths in use, so that a look-up probes each length once.
    san_ip: HashSet<(IpAddr, u8)>,
    ip_prefixes: BTreeSet<(bool, u8)>,
    spiffe_exact: HashSet<SpiffeId>,
    spiffe_below: HashSet<SpiffeId>,
    fingerprints: HashSet<Fingerprint>,
}

impl IdentityRules {
    pub fn add_cn(&mut self, cn: &str) {
        self.cns.insert(cn.to_owned());
    }

    pub fn add_dn(&mut self, dn: Dn) {
        self.dns.insert(dn);
    }

    pub fn add_san(&mut self, rule: SanRule) {
        match rule {
            SanRule::Dns(name) => self.san_dns.insert(name),
            SanRule::DnsWildcard(parent) => self.san_dns_wildcard.insert(parent),
            SanRule::Email(email) => self.san_email.insert(email),
            SanRule::Uri(uri) => self.san_uri.insert(uri),
            SanRule::Ip(ip, prefix) => {
                self.ip_prefixes.insert((ip.is_ipv4(), prefix));
                self.san_ip.insert((ip, prefix))
            }
        };
    }

    pub fn add_spiffe(&mut self, pattern: SpiffePattern) {
        match pattern {
            SpiffePattern::Exact(id) => self.spiffe_exact.insert(id),
            SpiffePattern::Below(id) => self.spiffe_below.insert(id),
        };
    }

    pub fn add_fingerprint(&mut self, fingerprint: Fingerprint) {
        self.fingerprints.insert(fingerprint);
    }

    pub fn matches(&self, id: &Identity) -> bool {
        id.cn.as_ref().is_some_and(|cn| self.cns.contains(cn))
            || self.dns.contains(&id.subject)
            || self.fingerprints.contains(id.fingerprint())
            || self.matches_san(id)
            || id
                .spiffe_id
                .as_ref()
                .is_some_and(|sid| self.matches_spiffe(sid))
    }

    fn matches_san(&self, id: &Identity) -> bool {
        id.sans.dns.iter().any(|name| {
            self.san_dns.contains(name)
                || san::wildcard_parent(name).is_some_and(|p| self.san_dns_wildcard.contains(p))
        }) || id.sans.email.iter().any(|e| self.san_email.contains(e))
            || id.sans.uri.iter().any(|u| self.san_uri.contains(u))
            || id.sans.ip.iter().any(|&ip| {
                self.ip_prefixes
                    .iter()
                    .filter(|&&(v4, _)| v4 == ip.is_ipv4())
                    .any(|&(_, prefix)| self.san_ip.contains(&(san::mask(ip, prefix), prefix)))
            })
    }

    fn matches_spiffe(&self, sid: &SpiffeId) -> bool {
        self.spiffe_exact.contains(sid) || sid.ancestors().any(|a| self.spiffe_below.contains(a))
    }
}

/// The rules in effect at one configuration level. Each family is `None`
/// where neither this level nor an enclosing one sets it.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub identity: Option<Arc<IdentityRules>>,
    pub issuers: Option<Arc<HashSet<Dn>>>,
    pub deny_serials: Option<Arc<HashSet<Serial>>>,
    /// Revocation sources (`mtls_crl`, `mtls_deny_list`), by index into the
    /// list of sources of the configuration.
    pub crls: Option<Arc<[usize]>>,
    pub deny_lists: Option<Arc<[usize]>>,
}

impl Policy {
    pub fn has_rules(&self) -> bool {
        self.identity.is_some()
            || self.issuers.is_some()
            || self.deny_serials.is_some()
            || self.crls.is_some()
            || self.deny_lists.is_some()
    }

    /// Takes each family this level does not set from the enclosing level.
    pub fn inherit(&mut self, parent: &Policy) {
        if self.identity.is_none() {
            self.identity.clone_from(&parent.identity);
        }
        if self.issuers.is_none() {
            self.issuers.clone_from(&parent.issuers);
        }
        if self.deny_serials.is_none() {
            self.deny_serials.clone_from(&parent.deny_serials);
        }
        if self.crls.is_none() {
            self.crls.clone_from(&parent.crls);
        }
        if self.deny_lists.is_none() {
            self.deny_lists.clone_from(&parent.deny_lists);
        }
    }

    /// Deny rules are checked before allow rules: deny always wins.
    /// `revocation` checks the certificate against the revocation sources.
    /// Without rules a verified certificate passes as it is, and nothing of
    /// it is read.
    pub fn decide(
        &self,
        peer: &Peer<'_>,
        revocation: impl FnOnce(&Identity) -> Result<(), Reason>,
    ) -> Result<(), Reason> {
        let cert = match peer {
            Peer::NoCert => return Err(Reason::NoCert),
            Peer::Unverified => return Err(Reason::Unverified),
            Peer::Unreadable => return Err(Reason::BadCert),
            Peer::Verified(cert) => cert,
        };
        if !self.has_rules() {
            return Ok(());
        }
        let id = cert.identity().ok_or(Reason::BadCert)?;
        if self
            .deny_serials
            .as_ref()
            .is_some_and(|s| s.contains(&id.serial))
        {
            return Err(Reason::SerialDenied);
        }
        revocation(id)?;
        if self
            .issuers
            .as_ref()
            .is_some_and(|s| !s.contains(&id.issuer))
        {
            return Err(Reason::Issuer);
        }
        if self
            .identity
            .as_ref()
            .is_some_and(|rules| !rules.matches(id))
        {
            return Err(Reason::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "policy/tests.rs"]
mod tests;
