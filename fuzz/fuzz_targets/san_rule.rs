//! `mtls_allow_san` values and their matching. The input is a rule value,
//! a newline, then a certificate SAN value of the same type. Parsing never
//! panics; a rule matches a certificate holding exactly the name it was
//! written from; and matching follows the documented semantics: a DNS name
//! case-insensitively, a wildcard one leftmost label, never the bare
//! parent nor a certificate's literal `*`, an IP address within its
//! network.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::san::{self, SanRule, Sans};
use ngx_http_mtls_module::policy::IdentityRules;

fn matches(rule: &SanRule, sans: Sans) -> bool {
    let mut rules = IdentityRules::default();
    rules.add_san(rule.clone());
    rules.matches_san(&sans)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rule_text, name) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(rule) = SanRule::parse(rule_text) else {
        return;
    };
    match &rule {
        SanRule::Dns(dns) => {
            assert!(matches(
                &rule,
                Sans {
                    dns: vec![dns.clone()],
                    ..Sans::default()
                }
            ));
            // A certificate's name, as `Sans::from_general_names` keeps it.
            let cert = name.to_ascii_lowercase();
            let hit = matches(
                &rule,
                Sans {
                    dns: vec![cert.clone()],
                    ..Sans::default()
                },
            );
            assert_eq!(hit, cert == *dns, "{rule_text:?} {name:?}");
        }
        SanRule::DnsWildcard(parent) => {
            let child = format!("x-1.{parent}");
            assert!(matches(
                &rule,
                Sans {
                    dns: vec![child],
                    ..Sans::default()
                }
            ));
            for miss in [
                parent.clone(),
                format!("*.{parent}"),
                format!("a.b.{parent}"),
                format!(".{parent}"),
            ] {
                assert!(
                    !matches(
                        &rule,
                        Sans {
                            dns: vec![miss.clone()],
                            ..Sans::default()
                        }
                    ),
                    "{miss}"
                );
            }
            let cert = name.to_ascii_lowercase();
            let hit = matches(
                &rule,
                Sans {
                    dns: vec![cert.clone()],
                    ..Sans::default()
                },
            );
            assert_eq!(
                hit,
                san::wildcard_parent(&cert) == Some(parent.as_str()),
                "{name:?}"
            );
        }
        SanRule::Email(email) => {
            assert!(matches(
                &rule,
                Sans {
                    email: vec![email.clone()],
                    ..Sans::default()
                }
            ));
        }
        SanRule::Uri(uri) => {
            assert!(matches(
                &rule,
                Sans {
                    uri: vec![uri.clone()],
                    ..Sans::default()
                }
            ));
            let hit = matches(
                &rule,
                Sans {
                    uri: vec![name.to_owned()],
                    ..Sans::default()
                },
            );
            assert_eq!(hit, name == uri);
        }
        &SanRule::Ip(network, prefix) => {
            assert!(prefix <= san::max_prefix(&network));
            assert_eq!(san::mask(network, prefix), network, "host bits cleared");
            assert!(matches(
                &rule,
                Sans {
                    ip: vec![network],
                    ..Sans::default()
                }
            ));
            if let Ok(ip) = name.parse::<IpAddr>() {
                let inside = ip.is_ipv4() == network.is_ipv4() && san::mask(ip, prefix) == network;
                assert_eq!(
                    matches(
                        &rule,
                        Sans {
                            ip: vec![ip],
                            ..Sans::default()
                        }
                    ),
                    inside
                );
            }
        }
    }
});
