//! Which addresses a webhook may reach. A platform names its own webhook URL, so without
//! a check it could make the service call what only the service can reach: the cloud's
//! metadata endpoint (169.254.169.254), the Hub's API, a database on the pod network,
//! the service itself. Every address a URL names or resolves to must be public, unless
//! the operator listed its network (`platforms.webhook_allow_networks`).
//!
//! The check is made on the addresses actually connected to: names are resolved by
//! [`GuardedResolver`] (so a name that resolves to a public address when registered and
//! to a private one when delivering, DNS rebinding, is still refused), and an address
//! written in the URL is checked before the request. Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The networks the operator allows beside public addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// From `platforms.webhook_allow_networks` (CIDRs or single addresses).
    pub fn new(networks: &[String]) -> Result<Self, String> {
        let allowed = networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "platforms.webhook_allow_networks: {n:?} is not a network (CIDR) or \
                             an address"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        not_public(ip)
    }

    /// Check a webhook URL as written: http(s), a host, and no address it names outright
    /// that is refused. (Names are checked when they are resolved, at each delivery.)
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("the webhook URL is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err("a webhook URL is https:// (or http://)".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("a webhook URL may not carry a user or password".into());
        }
        let ip = match parsed.host() {
            None => return Err("the webhook URL has no host".into()),
            Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            Some(Host::Domain(d)) => d.parse::<IpAddr>().ok(),
        };
        if let Some(ip) = ip
            && let Some(why) = self.refuses(ip)
        {
            return Err(format!(
                "the webhook URL names {ip}, {why}; webhooks go to public addresses only \
                 (the operator may allow a network with platforms.webhook_allow_networks)"
            ));
        }
        Ok(parsed)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Why an address is not a public unicast one.
fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => not_public_v4(a),
        IpAddr::V6(a) => not_public_v6(a),
    }
}

fn not_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [b0, b1, ..] = a.octets();
    if a.is_loopback() {
        Some("a loopback address")
    } else if a.is_private() {
        Some("a private address")
    } else if a.is_link_local() {
        Some("a link-local address (where clouds serve instance metadata)")
    } else if a.is_unspecified() || b0 == 0 {
        Some("an unspecified address")
    } else if a.is_multicast() || a.is_broadcast() || b0 >= 240 {
        Some("not a unicast address")
    } else if b0 == 100 && (64..128).contains(&b1) {
        Some("a shared (carrier-grade NAT) address")
    } else if b0 == 192 && b1 == 0 && a.octets()[2] == 0 {
        Some("a protocol-assignment address")
    } else if b0 == 198 && (b1 == 18 || b1 == 19) {
        Some("a benchmarking address")
    } else {
        None
    }
}

fn not_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s0 = a.segments()[0];
    if a.is_loopback() {
        Some("a loopback address")
    } else if a.is_unspecified() {
        Some("an unspecified address")
    } else if a.is_multicast() {
        Some("not a unicast address")
    } else if (s0 & 0xfe00) == 0xfc00 {
        Some("a private (unique local) address")
    } else if (s0 & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if let Some(v4) = a.to_ipv4() {
        // IPv4-compatible and NAT64 forms carry an IPv4 address: judge that one.
        not_public_v4(v4)
    } else if s0 == 0x64 && a.segments()[1] == 0xff9b {
        Some("a NAT64 address")
    } else {
        None
    }
}

/// A resolver that hands the connector only the addresses the policy allows, and fails
/// the request (saying why) when none is left.
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refuses(a.ip()) {
                    Some(why) => {
                        refused = Some((a.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let msg = match refused {
                    Some((ip, why)) => format!(
                        "{host} resolves to {ip}, {why}: webhooks go to public addresses only"
                    ),
                    None => format!("{host} resolves to no address"),
                };
                return Err(msg.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_loopback_and_private_addresses_are_refused_unless_listed() {
        let p = AddressPolicy::new(&[]).unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8081/hub/api",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.1/",
        ] {
            assert!(p.check_url(url).is_err(), "{url} should be refused");
        }
        for url in [
            "https://lms.example.edu/hooks/otter",
            "http://93.184.215.14/x",
        ] {
            p.check_url(url).unwrap();
        }
        assert!(p.check_url("ftp://example.com/").is_err());
        assert!(p.check_url("https://u:p@example.com/").is_err());

        let tests = AddressPolicy::new(&["127.0.0.1".into(), "10.99.0.0/16".into()]).unwrap();
        tests.check_url("http://127.0.0.1:9999/hook").unwrap();
        tests.check_url("http://10.99.3.4/hook").unwrap();
        assert!(tests.check_url("http://127.0.0.2/").is_err());
        assert!(tests.check_url("http://169.254.169.254/").is_err());
        assert!(AddressPolicy::new(&["not a net".into()]).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_when_resolved() {
        let r = GuardedResolver {
            policy: Arc::new(AddressPolicy::default()),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match r.resolve(name).await {
            Ok(_) => panic!("localhost was allowed"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("loopback"), "{err}");
    }
}
