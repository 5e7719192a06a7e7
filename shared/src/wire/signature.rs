//! Detached Ed25519 signatures on every envelope, on top of relay authentication.
//!
//! Relay SAS keys only prove that someone may use a hybrid connection; anyone holding the key (an
//! Azure administrator, a leaked env file) could inject worklist items. Signing each message with a
//! key that never leaves its side closes that gap, and several trusted public keys let a side
//! rotate its key without downtime.
//!
//! The signature covers the message's canonical bytes: the JSON object without its `signature`
//! member, object keys sorted by their UTF-8 bytes at every depth, no insignificant whitespace,
//! strings and numbers as `serde_json` writes them. Receivers
//! verify the JSON *as received* (unknown fields included), never a re-serialised typed struct, so a
//! newer peer's extra fields stay covered and cannot be stripped or added in transit.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The JSON member that carries the signature in every envelope.
pub const FIELD: &str = "signature";
/// The only algorithm we emit or accept.
pub const ALGORITHM: &str = "Ed25519";

/// Why a signature was refused; the text goes back to the sender in an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("message is not signed (no \"signature\" member)")]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("message signed with key {0}, which is not among the trusted keys")]
    UnknownKey(String),
    #[error("signature by key {0} does not match the message (tampered or re-encoded)")]
    Invalid(String),
}

/// Errors reading keys from configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is not valid base64: {reason}")]
    Base64 { what: &'static str, reason: String },
    #[error("{what} must be 32 bytes, got {len}")]
    Length { what: &'static str, len: usize },
    #[error("public key {0} is not a valid Ed25519 point")]
    Point(String),
}

/// The `signature` member of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Always `Ed25519`.
    pub alg: String,
    /// Which key signed: lets a receiver with several trusted keys pick one without trying all.
    pub key_id: String,
    /// Base64 of the 64-byte signature.
    pub value: String,
}

/// A short, stable name for a public key (first 8 bytes of its SHA-256, hex), safe to log.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    fn of(key: &ed25519_dalek::VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The id as it appears in `signature.key_id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// This side's private key (`SIGNING_KEY`). Debug output never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    id: KeyId,
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SigningKey {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the OS random source is available");
        SigningKey::from_seed(seed)
    }

    fn from_seed(seed: [u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let id = KeyId::of(&key.verifying_key());
        SigningKey { key, id }
    }

    /// Reads the base64 32-byte seed that `keygen` prints as `SIGNING_KEY=…`.
    pub fn from_base64(text: &str) -> Result<SigningKey, KeyError> {
        Ok(SigningKey::from_seed(decode_32("SIGNING_KEY", text)?))
    }

    /// The seed as base64, for `SIGNING_KEY=…`.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.to_bytes())
    }

    /// The matching public key, to give to the peer.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
            id: self.id.clone(),
        }
    }

    /// The id receivers will see in `signature.key_id`.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Adds (or replaces) the `signature` member of a JSON object, signing everything else in it.
    pub fn sign(&self, message: &mut Map<String, Value>) {
        message.remove(FIELD);
        let bytes = canonical_bytes(message);
        let signature = Signature {
            alg: ALGORITHM.to_string(),
            key_id: self.id.0.clone(),
            value: BASE64.encode(self.key.sign(&bytes).to_bytes()),
        };
        message.insert(
            FIELD.to_string(),
            serde_json::to_value(signature).expect("a signature serialises"),
        );
    }

    /// Serialises a message and signs it: the text to put on the wire.
    pub fn seal<T: Serialize>(&self, message: &T) -> String {
        let Value::Object(mut map) = serde_json::to_value(message).expect("wire types serialise")
        else {
            panic!("wire messages are JSON objects");
        };
        self.sign(&mut map);
        Value::Object(map).to_string()
    }

    /// The `keygen` output: two lines ready to paste into an env file.
    pub fn env_lines(&self) -> String {
        format!(
            "SIGNING_KEY={}\nPUBLIC_KEY={}\n",
            self.to_base64(),
            self.public_key().to_base64()
        )
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

/// A peer's public key (one entry of `PEER_PUBLIC_KEYS`).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// Reads the base64 32-byte key that `keygen` prints as `PUBLIC_KEY=…`.
    pub fn from_base64(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_32("public key", text)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Point(text.trim().to_string()))?;
        let id = KeyId::of(&key);
        Ok(PublicKey { key, id })
    }

    /// The key as base64, for `PUBLIC_KEY=…`.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// The id signatures by the matching private key carry.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

/// The public keys a side trusts. More than one during a key rotation.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

impl Keyring {
    /// A keyring trusting exactly these keys.
    pub fn new(keys: Vec<PublicKey>) -> Keyring {
        Keyring { keys }
    }

    /// Parses `PEER_PUBLIC_KEYS`: comma-separated base64 keys, blanks ignored.
    pub fn from_list(list: &str) -> Result<Keyring, KeyError> {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(PublicKey::from_base64)
            .collect::<Result<_, _>>()?;
        Ok(Keyring { keys })
    }

    /// The trusted keys, for start-up logs.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verifies a received JSON object; returns the id of the key that signed it.
    pub fn verify(&self, message: &Map<String, Value>) -> Result<KeyId, SignatureError> {
        let field = message.get(FIELD).ok_or(SignatureError::Missing)?;
        let signature: Signature = serde_json::from_value(field.clone())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        if signature.alg != ALGORITHM {
            return Err(SignatureError::Malformed(format!(
                "algorithm {:?} is not {ALGORITHM}",
                signature.alg
            )));
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id.0 == signature.key_id)
            .ok_or_else(|| SignatureError::UnknownKey(signature.key_id.clone()))?;
        let bytes = BASE64
            .decode(signature.value.as_bytes())
            .map_err(|e| SignatureError::Malformed(format!("value is not base64: {e}")))?;
        let sig = ed25519_dalek::Signature::from_slice(&bytes)
            .map_err(|_| SignatureError::Malformed("value is not 64 bytes".into()))?;
        let mut unsigned = message.clone();
        unsigned.remove(FIELD);
        key.key
            .verify(&canonical_bytes(&unsigned), &sig)
            .map_err(|_| SignatureError::Invalid(key.id.0.clone()))?;
        Ok(key.id.clone())
    }
}

fn decode_32(what: &'static str, text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64
        .decode(text.trim().as_bytes())
        .map_err(|e| KeyError::Base64 {
            what,
            reason: e.to_string(),
        })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length { what, len })
}

/// The bytes a signature covers: compact JSON with object keys sorted at every depth.
///
/// Written by hand because `serde_json`'s key order depends on a crate feature (`preserve_order`)
/// that any other crate in a build may switch on; signatures must not depend on the build.
pub fn canonical_bytes(message: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(message, &mut out);
    out
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let message =
            object(json!({"b": 1, "a": {"z": [true, null, {"y": "é", "x": 1.5}], "c": "d"}}));
        assert_eq!(
            String::from_utf8(canonical_bytes(&message)).unwrap(),
            r#"{"a":{"c":"d","z":[true,null,{"x":1.5,"y":"é"}]},"b":1}"#
        );
    }

    #[test]
    fn signed_message_verifies_whatever_the_key_order_and_spacing() {
        let key = SigningKey::generate();
        let keyring = Keyring::new(vec![key.public_key()]);
        let mut message = object(json!({"action_id": "x", "parameters": {"b": 2, "a": 1}}));
        key.sign(&mut message);
        // Re-serialise with whitespace, as another JSON library might.
        let text = serde_json::to_string_pretty(&message).unwrap();
        let received: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(keyring.verify(&received).unwrap(), *key.id());
    }

    #[test]
    fn tampering_missing_and_unknown_keys_are_refused() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let keyring = Keyring::new(vec![other.public_key(), key.public_key()]);
        let mut message = object(json!({"accession_number": "ACC1"}));
        key.sign(&mut message);
        assert!(
            keyring.verify(&message).is_ok(),
            "second key in the ring works (rotation)"
        );

        let mut tampered = message.clone();
        tampered.insert("accession_number".into(), json!("ACC2"));
        assert_eq!(
            keyring.verify(&tampered),
            Err(SignatureError::Invalid(key.id().to_string()))
        );

        let mut added = message.clone();
        added.insert("extra".into(), json!(1));
        assert!(matches!(
            keyring.verify(&added),
            Err(SignatureError::Invalid(_))
        ));

        let mut unsigned = message.clone();
        unsigned.remove(FIELD);
        assert_eq!(keyring.verify(&unsigned), Err(SignatureError::Missing));

        let stranger = Keyring::new(vec![other.public_key()]);
        assert_eq!(
            stranger.verify(&message),
            Err(SignatureError::UnknownKey(key.id().to_string()))
        );
    }

    #[test]
    fn keys_round_trip_through_env_text() {
        let key = SigningKey::generate();
        let lines = key.env_lines();
        let seed = lines
            .lines()
            .next()
            .unwrap()
            .strip_prefix("SIGNING_KEY=")
            .unwrap();
        let public = lines
            .lines()
            .nth(1)
            .unwrap()
            .strip_prefix("PUBLIC_KEY=")
            .unwrap();
        assert_eq!(SigningKey::from_base64(seed).unwrap().id(), key.id());
        let ring = Keyring::from_list(&format!(" {public} ,, ")).unwrap();
        assert_eq!(ring.keys().len(), 1);
        assert!(
            !format!("{key:?}").contains(seed),
            "debug output must not leak the secret"
        );
        assert!(matches!(
            PublicKey::from_base64("AAAA"),
            Err(KeyError::Length { .. })
        ));
        assert!(matches!(
            SigningKey::from_base64("%%%"),
            Err(KeyError::Base64 { .. })
        ));
    }
}
