//! Who a request comes from: its address and, with a valid token, its user
//! (what the rate limits count by).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use uuid::Uuid;

use shared_core::auth::token::TokenKeys;

use crate::extract::auth::bearer_token;
use crate::state::AppState;

/// The client's address, for handlers that count per address.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(address(&parts.headers, peer, &state.settings.http.trusted_proxies)))
    }
}

/// The client's address. `X-Forwarded-For` is believed only when the peer
/// is a trusted proxy, and then read from the right: the first address that
/// is not itself a trusted proxy is the client (anything left of it could
/// have been written by the client).
pub fn address(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|ip| !is_trusted(ip)).or(forwarded.first()).copied().unwrap_or(peer)
}

/// The user id of a valid bearer token, if the request carries one.
pub fn user_id(headers: &HeaderMap, tokens: &TokenKeys) -> Option<Uuid> {
    tokens.decode_access_token(bearer_token(headers)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let spoofed = headers("1.2.3.4, 203.0.113.7");
        // From the proxy: the rightmost untrusted entry, not the spoofable left one.
        assert_eq!(address(&spoofed, Some("10.0.0.2".parse().unwrap()), &[proxy]), client);
        // From anyone else: the peer, whatever the header says.
        assert_eq!(address(&spoofed, Some(client), &[proxy]), client);
        // Several proxies in a row are skipped.
        let chain = headers("203.0.113.7, 10.0.0.9");
        assert_eq!(address(&chain, Some("10.0.0.2".parse().unwrap()), &[proxy]), client);
    }
}
