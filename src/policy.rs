//! The request-time decision: a compiled policy and the peer certificate in,
//! allow or a reason to deny out. Pure logic, no nginx types.
//!
//! Every look-up is a hash-set probe, so a policy with 100,000 names costs
//! the same per request as a policy with one.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::identity::dn::Dn;
use crate::identity::fingerprint::Fingerprint;
use crate::identity::san::Sans;
use crate::identity::san::{self, SanRule};
use crate::identity::serial::Serial;
use crate::identity::spiffe::{SpiffeId, SpiffePattern};
use crate::identity::{Identity, IdentityError};

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
    /// No OCSP answer in time, or only a failure (`mtls_ocsp_fail hard`).
    OcspUnavailable,
    /// The OCSP responder does not know the certificate.
    OcspUnknown,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
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
        Reason::OcspUnavailable,
        Reason::OcspUnknown,
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
            Reason::OcspUnavailable => "ocsp_unavailable",
            Reason::OcspUnknown => "ocsp_unknown",
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
    /// A verified certificate, whose parts are read as the rules ask.
    Verified(&'a Identity),
}

/// No rule matched, and a part of the certificate some rule needed could
/// not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct Unread;

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

    /// Whether a rule matches `id`. Only the parts of the certificate that
    /// rules of this level look at are read, until one matches: a rule
    /// that matches a part the module can read allows, whatever the other
    /// parts hold. `Err` where none matched and a part a rule needed could
    /// not be read: that is no proof that the certificate is not allowed.
    pub fn matches(&self, id: &Identity) -> Result<bool, Unread> {
        let mut unread = false;
        let mut check = |outcome: Result<bool, &IdentityError>| match outcome {
            Ok(matched) => matched,
            Err(_) => {
                unread = true;
                false
            }
        };
        let matched = (!self.cns.is_empty()
            && check(id.cn().map(|cn| cn.is_some_and(|cn| self.cns.contains(cn)))))
            || (!self.dns.is_empty() && check(id.subject().map(|dn| self.dns.contains(dn))))
            || (!self.fingerprints.is_empty()
                && check(id.fingerprint().map(|f| self.fingerprints.contains(f))))
            || (self.has_san_rules() && check(id.sans().map(|sans| self.matches_san(sans))))
            || (self.has_spiffe_rules()
                && check(
                    id.spiffe_id()
                        .map(|sid| sid.is_some_and(|sid| self.matches_spiffe(sid))),
                ));
        match (matched, unread) {
            (true, _) => Ok(true),
            (false, true) => Err(Unread),
            (false, false) => Ok(false),
        }
    }

    fn has_san_rules(&self) -> bool {
        !(self.san_dns.is_empty()
            && self.san_dns_wildcard.is_empty()
            && self.san_email.is_empty()
            && self.san_uri.is_empty()
            && self.san_ip.is_empty())
    }

    fn has_spiffe_rules(&self) -> bool {
        !(self.spiffe_exact.is_empty() && self.spiffe_below.is_empty())
    }

    /// Whether a SAN rule matches one of `sans`.
    pub fn matches_san(&self, sans: &Sans) -> bool {
        sans.dns.iter().any(|name| {
            self.san_dns.contains(name)
                || san::wildcard_parent(name).is_some_and(|p| self.san_dns_wildcard.contains(p))
        }) || sans.email.iter().any(|e| self.san_email.contains(e))
            || sans.uri.iter().any(|u| self.san_uri.contains(u))
            || sans.ip.iter().any(|&ip| {
                self.ip_prefixes
                    .iter()
                    .filter(|&&(v4, _)| v4 == ip.is_ipv4())
                    .any(|&(_, prefix)| self.san_ip.contains(&(san::mask(ip, prefix), prefix)))
            })
    }

    /// Whether a SPIFFE pattern matches `sid`.
    pub fn matches_spiffe(&self, sid: &SpiffeId) -> bool {
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
    /// Each check reads only the parts of the certificate it needs; one it
    /// cannot read denies the request as `bad_cert`. Without rules a
    /// verified certificate passes as it is, and nothing of it is read.
    /// The rule families in effect, by their directives, for the debug log.
    pub fn families(&self) -> String {
        let families = [
            ("mtls_allow_*", self.identity.is_some()),
            ("mtls_issuer", self.issuers.is_some()),
            ("mtls_deny_serial", self.deny_serials.is_some()),
            ("mtls_crl", self.crls.is_some()),
            ("mtls_deny_list", self.deny_lists.is_some()),
        ];
        let set: Vec<&str> = families.iter().filter(|f| f.1).map(|f| f.0).collect();
        if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(", ")
        }
    }

    pub fn decide(
        &self,
        peer: &Peer<'_>,
        revocation: impl FnOnce(&Identity) -> Result<(), Reason>,
    ) -> Result<(), Reason> {
        let id = match peer {
            Peer::NoCert => return Err(Reason::NoCert),
            Peer::Unverified => return Err(Reason::Unverified),
            Peer::Unreadable => return Err(Reason::BadCert),
            Peer::Verified(id) => id,
        };
        if !self.has_rules() {
            return Ok(());
        }
        let unreadable = |_| Reason::BadCert;
        if let Some(serials) = &self.deny_serials {
            if serials.contains(id.serial().map_err(unreadable)?) {
                return Err(Reason::SerialDenied);
            }
        }
        revocation(id)?;
        if let Some(issuers) = &self.issuers {
            if !issuers.contains(id.issuer().map_err(unreadable)?) {
                return Err(Reason::Issuer);
            }
        }
        match self.identity.as_ref().map(|rules| rules.matches(id)) {
            None | Some(Ok(true)) => Ok(()),
            Some(Ok(false)) => Err(Reason::NotAllowed),
            Some(Err(Unread)) => Err(Reason::BadCert),
        }
    }
}

#[cfg(test)]
#[path = "policy/tests.rs"]
mod tests;
