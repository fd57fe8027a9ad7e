//! The client's address, for rate limiting.
//!
//! Without trusted proxies the client is the TCP peer, whatever `X-Forwarded-For`
//! says. With trusted proxies configured, and only when the peer is one of them, the
//! `X-Forwarded-For` chain (every such header, in order) is read **from the right**:
//! each hop that is itself a trusted proxy is skipped, and the first one that is not is
//! the client. The left-most entry is never believed on its own: anyone can write it
//! (that is the bypass of `tower_governor`'s `SmartIpKeyExtractor` and of old
//! better-auth). An entry that does not parse stops the walk at the last good hop.
//!
//! IPv6 clients are keyed by their /64 (one subscriber usually holds a whole /64),
//! IPv4 clients by their address; IPv4-mapped IPv6 addresses count as IPv4.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Trusted proxies and the header they set.
#[derive(Debug, Clone, Default)]
pub struct ClientIpRule {
    /// Networks whose hops are skipped (empty: the peer address is the client).
    pub trusted: Vec<IpNet>,
}

impl ClientIpRule {
    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = canonical(peer.ip());
        if !self.is_trusted(peer_ip) {
            return peer_ip;
        }
        let mut chain: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(s) = value.to_str() else { return peer_ip };
            chain.extend(s.split(',').map(str::trim));
        }
        let mut client = peer_ip;
        for hop in chain.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64.
pub fn network_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: an address, optionally `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn rule(nets: &[&str]) -> ClientIpRule {
        ClientIpRule { trusted: nets.iter().map(|n| n.parse().unwrap()).collect() }
    }

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 4000)
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let r = rule(&[]);
        assert_eq!(r.client_ip(peer("203.0.113.9"), &headers(&["1.2.3.4"])), "203.0.113.9".parse::<IpAddr>().unwrap());
        let r = rule(&["10.0.0.0/8"]);
        assert_eq!(r.client_ip(peer("203.0.113.9"), &headers(&["1.2.3.4"])), "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn right_most_untrusted_hop_never_the_left_most() {
        let r = rule(&["10.0.0.0/8"]);
        // The client forged "1.2.3.4"; the proxy appended the real address.
        let got = r.client_ip(peer("10.0.0.2"), &headers(&["1.2.3.4, 198.51.100.7"]));
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Two trusted hops, split over two headers.
        let got = r.client_ip(peer("10.0.0.2"), &headers(&["1.2.3.4, 198.51.100.7", "10.1.1.1"]));
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Every hop trusted: the left-most trusted one.
        let got = r.client_ip(peer("10.0.0.2"), &headers(&["10.9.9.9"]));
        assert_eq!(got, "10.9.9.9".parse::<IpAddr>().unwrap());
        // No header from a trusted peer: the peer.
        assert_eq!(r.client_ip(peer("10.0.0.2"), &headers(&[])), "10.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_stops_the_walk() {
        let r = rule(&["10.0.0.0/8"]);
        let got = r.client_ip(peer("10.0.0.2"), &headers(&["1.2.3.4, not-an-ip, 10.3.3.3"]));
        assert_eq!(got, "10.3.3.3".parse::<IpAddr>().unwrap());
        let got = r.client_ip(peer("10.0.0.2"), &headers(&["[2001:db8::1]:443, 10.3.3.3"]));
        assert_eq!(got, "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_by_64_and_mapped_v4() {
        assert_eq!(network_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(network_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(network_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(network_key("192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}
