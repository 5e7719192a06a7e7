//! Shared Access Signature tokens, as Azure Relay issues and checks them.
//!
//! Both halves live here so the client and the emulator can never disagree: [`Token::sign`] is what
//! our listener and sender present, [`ParsedToken::parse`] and [`ParsedToken::verify`] are what the
//! emulator checks, byte for byte as the service does (the HMAC covers the `sr` text *as sent*,
//! never re-encoded, because clients differ in hex case).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Everything but RFC 3986 unreserved characters is escaped, as .NET's `WebUtility.UrlEncode` and
/// Python's `quote_plus` do for the characters that can appear in a resource URI or a signature.
const SAS_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The prefix every token starts with (compared case-insensitively when parsing).
pub const SCHEME: &str = "SharedAccessSignature";

/// Why a token was refused. The emulator maps these onto HTTP 401 and 403 exactly as the service does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// Missing, malformed, unknown key name, wrong signature or expired: the service answers 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A valid token for some other namespace or entity, or without the needed right: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
}

impl SasError {
    /// The HTTP status the relay answers a handshake with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            SasError::Unauthorized(_) => 401,
            SasError::Forbidden(_) => 403,
        }
    }
}

/// A signed token, ready to put in `sb-hc-token` or the `ServiceBusAuthorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    text: String,
    expires_at: u64,
}

impl Token {
    /// Signs `resource` (for example `http://ns.servicebus.windows.net/hc`) with a key, valid until
    /// `expires_at` (Unix seconds). The key string's UTF-8 bytes are the HMAC key: the portal key is
    /// *not* base64-decoded, as every Microsoft SDK does.
    pub fn sign(resource: &str, key_name: &str, key: &str, expires_at: u64) -> Token {
        let sr = utf8_percent_encode(resource, SAS_ESCAPE).to_string();
        let sig = signature(key, &sr, expires_at);
        let text = format!(
            "{SCHEME} sr={sr}&sig={}&se={expires_at}&skn={key_name}",
            utf8_percent_encode(&sig, SAS_ESCAPE)
        );
        Token { text, expires_at }
    }

    /// The token text, `SharedAccessSignature sr=…&sig=…&se=…&skn=…`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Unix seconds after which the relay refuses the token (and closes a listener that has not renewed).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    // The signature is a bearer secret until it expires: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The resource URI a token is signed for: `http://{namespace}/{entity}`, as the Node SDK signs it.
/// The relay ignores the scheme and a trailing slash, so this works against real Azure too.
pub fn resource_uri(namespace: &str, entity: &str) -> String {
    format!("http://{namespace}/{}", entity.trim_matches('/'))
}

fn signature(key: &str, raw_sr: &str, expires_at: u64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(raw_sr.as_bytes());
    mac.update(b"\n");
    mac.update(expires_at.to_string().as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The four fields of a presented token, kept as sent (for the HMAC) and decoded (for the checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    /// `sr` exactly as it appeared in the token: the HMAC input.
    pub raw_resource: String,
    /// `sr` percent-decoded: the audience to check.
    pub resource: String,
    /// The decoded base64 signature.
    pub signature: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// The name of the authorization rule whose key signed it.
    pub key_name: String,
}

impl ParsedToken {
    /// Parses `SharedAccessSignature sr=…&sig=…&se=…&skn=…` (fields in any order, scheme in any case).
    pub fn parse(text: &str) -> Result<ParsedToken, SasError> {
        let bad = |why: &str| SasError::Unauthorized(format!("malformed token: {why}"));
        let text = text.trim();
        let (scheme, fields) = text.split_once(' ').ok_or_else(|| bad("no scheme"))?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(bad("scheme is not SharedAccessSignature"));
        }
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in fields.trim().split('&') {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("field without '='"))?;
            match name {
                "sr" => sr = Some(value),
                "sig" => sig = Some(value),
                "se" => se = Some(value),
                "skn" => skn = Some(value),
                _ => {}
            }
        }
        let raw_resource = sr.ok_or_else(|| bad("no sr"))?.to_string();
        let decode = |v: &str| percent_decode_str(v).decode_utf8_lossy().into_owned();
        Ok(ParsedToken {
            resource: decode(&raw_resource),
            raw_resource,
            signature: decode(sig.ok_or_else(|| bad("no sig"))?),
            expires_at: se
                .ok_or_else(|| bad("no se"))?
                .parse()
                .map_err(|_| bad("se is not a number"))?,
            key_name: decode(skn.ok_or_else(|| bad("no skn"))?),
        })
    }

    /// Checks the signature against candidate keys (primary, then secondary) and the expiry against
    /// `now` (Unix seconds). Audience and rights are the caller's to check: they depend on the entity.
    pub fn verify(&self, keys: &[&str], now: u64) -> Result<(), SasError> {
        let matches = keys.iter().any(|key| {
            let expected = signature(key, &self.raw_resource, self.expires_at);
            expected.as_bytes().ct_eq(self.signature.as_bytes()).into()
        });
        if !matches {
            return Err(SasError::Unauthorized(
                "InvalidSignature: the token has an invalid signature".into(),
            ));
        }
        if self.expires_at < now {
            return Err(SasError::Unauthorized(format!(
                "ExpiredToken: the token expired at {} (now {now})",
                self.expires_at
            )));
        }
        Ok(())
    }

    /// Whether the token's audience covers `entity` in `namespace`: the scheme and port are ignored,
    /// the host compared case-insensitively, and the path must be a segment prefix of the entity
    /// (a namespace-root token covers every entity).
    pub fn covers(&self, namespace: &str, entity: &str) -> bool {
        let without_scheme = match self.resource.split_once("://") {
            Some((_, rest)) => rest,
            None => self.resource.as_str(),
        };
        let (authority, path) = match without_scheme.find('/') {
            Some(i) => without_scheme.split_at(i),
            None => (without_scheme, "/"),
        };
        let host = authority.split(':').next().unwrap_or_default();
        if !host.eq_ignore_ascii_case(namespace) {
            return false;
        }
        let path = path.trim_end_matches('/').to_ascii_lowercase();
        let entity = format!("/{}/", entity.trim_matches('/').to_ascii_lowercase());
        entity.starts_with(&format!("{path}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented recipe, computed independently: HMAC-SHA256 over `sr + "\n" + se` with the
    /// key's UTF-8 bytes. Expected values come from `openssl dgst -sha256 -hmac` (see the comment).
    #[test]
    fn signs_the_documented_string() {
        // Python (Microsoft's documented helper): quote_plus(resource), then
        // printf 'http%%3A%%2F%%2Fns.servicebus.windows.net%%2Fhc\n1700000000' \
        //   | openssl dgst -sha256 -hmac 'secret' -binary | base64
        let token = Token::sign(
            "http://ns.servicebus.windows.net/hc",
            "rule",
            "secret",
            1_700_000_000,
        );
        assert_eq!(
            token.as_str(),
            "SharedAccessSignature sr=http%3A%2F%2Fns.servicebus.windows.net%2Fhc\
             &sig=ICL1tYylYbeKYwYlWBCwDqX1klzuwdhXatwtjXpC18Q%3D&se=1700000000&skn=rule"
        );
    }

    #[test]
    fn round_trips_and_verifies() {
        let token = Token::sign(&resource_uri("ns.example", "hc"), "rule", "k1", 2_000);
        let parsed = ParsedToken::parse(token.as_str()).unwrap();
        assert_eq!(parsed.key_name, "rule");
        assert!(parsed.verify(&["wrong", "k1"], 1_000).is_ok());
        assert!(matches!(
            parsed.verify(&["wrong"], 1_000),
            Err(SasError::Unauthorized(_))
        ));
        assert!(matches!(
            parsed.verify(&["k1"], 2_001),
            Err(SasError::Unauthorized(_))
        ));
    }

    #[test]
    fn keeps_the_raw_resource_for_the_hmac() {
        // Lower-case hex, as some clients send: re-encoding would break the signature.
        let sr = "https%3a%2f%2fns.example%2fhc";
        let sig = signature("k", sr, 5);
        let text = format!(
            "sharedaccesssignature se=5&skn=r&sr={sr}&sig={}",
            utf8_percent_encode(&sig, SAS_ESCAPE)
        );
        let parsed = ParsedToken::parse(&text).unwrap();
        assert!(parsed.verify(&["k"], 1).is_ok());
        assert!(parsed.covers("NS.example", "hc"));
    }

    #[test]
    fn audience_rules() {
        let check = |resource: &str, entity: &str| {
            let token = Token::sign(resource, "r", "k", 9);
            ParsedToken::parse(token.as_str())
                .unwrap()
                .covers("ns.example", entity)
        };
        assert!(check("http://ns.example/hc", "hc"));
        assert!(
            check("http://ns.example:443/hc", "hc"),
            "Node SDK puts the port in"
        );
        assert!(check("https://ns.example/hc/", "hc"));
        assert!(check("sb://ns.example/", "hc"), "namespace root covers all");
        assert!(!check("http://ns.example/hc2", "hc"));
        assert!(
            !check("http://ns.example/h", "hc"),
            "segment prefix, not string prefix"
        );
        assert!(!check("http://other.example/hc", "hc"));
    }

    #[test]
    fn malformed_tokens_are_unauthorized() {
        for text in [
            "",
            "Bearer x",
            "SharedAccessSignature sr=a&se=1&skn=r",
            "SharedAccessSignature sr=a&sig=b&se=x&skn=r",
        ] {
            assert!(
                matches!(ParsedToken::parse(text), Err(SasError::Unauthorized(_))),
                "{text}"
            );
        }
    }
}
