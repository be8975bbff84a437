//! Subject alternative names: the certificate's own values and the
//! `mtls_allow_san` rules that match them.
//!
//! Certificate values are taken literally: a SAN `*.example.com` in a client
//! certificate is a name with a `*` label, never a wildcard.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SanError {
    #[error("unknown type, must be \"dns\", \"email\", \"uri\" or \"ip\"")]
    Type,
    #[error("invalid DNS name")]
    Dns,
    #[error("invalid email address")]
    Email,
    #[error("invalid URI")]
    Uri,
    #[error("invalid IP address or network")]
    Ip,
}

/// The SANs of a certificate, normalized for comparison: DNS names in lower
/// case, the domain of email addresses in lower case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sans {
    pub dns: Vec<String>,
    pub email: Vec<String>,
    pub uri: Vec<String>,
    pub ip: Vec<IpAddr>,
}

impl Sans {
    pub fn from_general_names<'a>(names: impl IntoIterator<Item = &'a GeneralName<'a>>) -> Sans {
        let mut sans = Sans::default();
        for name in names {
            match name {
                GeneralName::DNSName(dns) => sans.dns.push(dns.to_ascii_lowercase()),
                GeneralName::RFC822Name(email) => sans.email.push(normalize_email(email)),
                GeneralName::URI(uri) => sans.uri.push((*uri).to_owned()),
                GeneralName::IPAddress(octets) => {
                    if let Some(ip) = ip_from_octets(octets) {
                        sans.ip.push(ip);
                    }
                }
                _ => {}
            }
        }
        sans
    }
}

/// One `mtls_allow_san` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SanRule {
    Dns(String),
    /// `*.example.com`, kept as its parent `example.com`.
    DnsWildcard(String),
    Email(String),
    Uri(String),
    /// An address, or a network in CIDR form with its host bits cleared.
    Ip(IpAddr, u8),
}

impl SanRule {
    /// Parses `TYPE:VALUE`; TYPE is case-insensitive.
    pub fn parse(text: &str) -> Result<SanRule, SanError> {
        let (kind, value) = text.split_once(':').ok_or(SanError::Type)?;
        match kind.to_ascii_lowercase().as_str() {
            "dns" => parse_dns(value),
            "email" => parse_email(value),
            "uri" => parse_uri(value),
            "ip" => parse_ip(value),
            _ => Err(SanError::Type),
        }
    }
}

/// The parent of a name for wildcard look-ups: `a.example.com` gives
/// `example.com`; a name whose first label is not a plain label (a literal
/// `*`, say) has none.
pub fn wildcard_parent(name: &str) -> Option<&str> {
    let (first, parent) = name.split_once('.')?;
    (is_label(first) && !parent.is_empty()).then_some(parent)
}

/// Clears the host bits of `ip` beyond `prefix`.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
}

pub fn max_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn parse_dns(value: &str) -> Result<SanRule, SanError> {
    let name = value.to_ascii_lowercase();
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(is_label) {
        return Err(SanError::Dns);
    }
    Ok(if wildcard {
        SanRule::DnsWildcard(rest.to_owned())
    } else {
        SanRule::Dns(name)
    })
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_email(value: &str) -> Result<SanRule, SanError> {
    match value.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && value.bytes().all(is_visible) =>
        {
            Ok(SanRule::Email(normalize_email(value)))
        }
        _ => Err(SanError::Email),
    }
}

/// The local part of an address is case-sensitive, the domain is not.
fn normalize_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => email.to_owned(),
    }
}

fn parse_uri(value: &str) -> Result<SanRule, SanError> {
    let scheme_ok = value.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if !scheme_ok || !value.bytes().all(is_visible) {
        return Err(SanError::Uri);
    }
    Ok(SanRule::Uri(value.to_owned()))
}

fn parse_ip(value: &str) -> Result<SanRule, SanError> {
    let (addr, prefix) = match value.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (value, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| SanError::Ip)?;
    let prefix = match prefix {
        None => max_prefix(&ip),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max_prefix(&ip))
            .ok_or(SanError::Ip)?,
        Some(_) => return Err(SanError::Ip),
    };
    Ok(SanRule::Ip(mask(ip, prefix), prefix))
}

fn ip_from_octets(octets: &[u8]) -> Option<IpAddr> {
    match octets.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)),
        _ => None,
    }
}

fn is_visible(b: u8) -> bool {
    b.is_ascii_graphic()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type() {
        assert_eq!(
            SanRule::parse("DNS:A.Example.com"),
            Ok(SanRule::Dns("a.example.com".into()))
        );
        assert_eq!(
            SanRule::parse("dns:*.example.com"),
            Ok(SanRule::DnsWildcard("example.com".into()))
        );
        assert_eq!(
            SanRule::parse("email:Ops@Example.COM"),
            Ok(SanRule::Email("Ops@example.com".into()))
        );
        assert_eq!(
            SanRule::parse("uri:https://x.example/a?b"),
            Ok(SanRule::Uri("https://x.example/a?b".into()))
        );
        assert_eq!(
            SanRule::parse("ip:10.1.2.3/8"),
            Ok(SanRule::Ip("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(
            SanRule::parse("ip:2001:db8::1"),
            Ok(SanRule::Ip("2001:db8::1".parse().unwrap(), 128))
        );
        assert_eq!(
            SanRule::parse("ip:::/0"),
            Ok(SanRule::Ip("::".parse().unwrap(), 0))
        );
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "foo:bar",
            "nocolon",
            "dns:",
            "dns:a..b",
            "dns:*.",
            "dns:a.*.b",
            "dns:**.b",
            "dns:a b",
            "email:nobody",
            "email:@x",
            "email:a@",
            "uri:no-scheme",
            "uri:http://a b",
            "ip:300.1.1.1",
            "ip:10.0.0.0/33",
            "ip:10.0.0.0/",
            "ip:10.0.0.0/+8",
            "ip:::1/129",
        ] {
            assert!(SanRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_parents() {
        assert_eq!(wildcard_parent("a.example.com"), Some("example.com"));
        assert_eq!(wildcard_parent("*.example.com"), None);
        assert_eq!(wildcard_parent("example"), None);
        assert_eq!(wildcard_parent(".example.com"), None);
    }

    #[test]
    fn masks() {
        let ip: IpAddr = "192.168.77.5".parse().unwrap();
        assert_eq!(mask(ip, 16), "192.168.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(ip, 0), "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(ip, 32), ip);
        let v6: IpAddr = "2001:db8:ffff::1".parse().unwrap();
        assert_eq!(mask(v6, 32), "2001:db8::".parse::<IpAddr>().unwrap());
    }
}
