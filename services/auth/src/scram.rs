//! SASL exchanges on stored SCRAM credentials: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
//! RFC 7677) and PLAIN (RFC 4616) checked against the same credentials. The primitives
//! (PBKDF2, HMAC, SHA-2, random nonces, constant-time comparison) come from aws-lc-rs.
//!
//! Passwords are taken as their UTF-8 bytes without SASLprep normalisation, as Kafka and
//! librdkafka do, so a credential made by either side checks on the other.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use silt_metadata::{ScramCredential, ScramMechanism};

/// Fewest and most iterations a credential may use (Kafka's bounds).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// Why an exchange failed. The text is what the client is told: it never says whether the
/// user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client's message does not follow the mechanism.
    #[error("malformed SASL message: {0}")]
    Malformed(String),
    /// Wrong user or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The client asked for something this server does not do.
    #[error("{0} is not supported")]
    Unsupported(String),
}

fn pbkdf2_alg(m: ScramMechanism) -> pbkdf2::Algorithm {
    match m {
        ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
    }
}

fn hmac_alg(m: ScramMechanism) -> hmac::Algorithm {
    match m {
        ScramMechanism::Sha256 => hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => hmac::HMAC_SHA512,
    }
}

fn digest_alg(m: ScramMechanism) -> &'static digest::Algorithm {
    match m {
        ScramMechanism::Sha256 => &digest::SHA256,
        ScramMechanism::Sha512 => &digest::SHA512,
    }
}

fn output_len(m: ScramMechanism) -> usize {
    digest_alg(m).output_len()
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac_alg(m), key), data)
        .as_ref()
        .to_vec()
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(digest_alg(m), data).as_ref().to_vec()
}

fn random(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rand::fill(&mut out).expect("the system random generator works");
    out
}

/// SaltedPassword := Hi(password, salt, iterations), Hi being PBKDF2 with the mechanism's
/// HMAC.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; output_len(mechanism)];
    let rounds = NonZeroU32::new(iterations.max(1)).expect("at least one iteration");
    pbkdf2::derive(
        pbkdf2_alg(mechanism),
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// The credential kept for a salted password (what AlterUserScramCredentials sends: the
/// password itself never reaches the server).
pub fn credential_from_salted_password(
    user: &str,
    mechanism: ScramMechanism,
    iterations: u32,
    salt: Vec<u8>,
    salted: &[u8],
) -> ScramCredential {
    let client_key = hmac(mechanism, salted, b"Client Key");
    ScramCredential {
        user: user.to_string(),
        mechanism,
        iterations,
        salt,
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted, b"Server Key"),
    }
}

/// A new credential for `password` with a fresh random salt.
pub fn new_credential(
    user: &str,
    password: &str,
    mechanism: ScramMechanism,
    iterations: u32,
) -> ScramCredential {
    let salt = random(32);
    let salted = salted_password(mechanism, password, &salt, iterations);
    credential_from_salted_password(user, mechanism, iterations, salt, &salted)
}

/// Whether `password` is the one `credential` was made from (PLAIN, HTTP basic auth).
pub fn verify_password(credential: &ScramCredential, password: &str) -> bool {
    let salted = salted_password(
        credential.mechanism,
        password,
        &credential.salt,
        credential.iterations,
    );
    let client_key = hmac(credential.mechanism, &salted, b"Client Key");
    let stored = hash(credential.mechanism, &client_key);
    constant_time::verify_slices_are_equal(&stored, &credential.stored_key).is_ok()
}

/// Parses a PLAIN message (`authzid NUL authcid NUL password`) into user and password. An
/// authorisation identity other than the user's own is refused.
pub fn parse_plain(message: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(message)
        .map_err(|_| SaslError::Malformed("PLAIN message is not UTF-8".into()))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN message is not authzid NUL user NUL password".into(),
        ));
    };
    if user.is_empty() {
        return Err(SaslError::Malformed("PLAIN message names no user".into()));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::Unsupported(
            "an authorisation identity other than the user's own".into(),
        ));
    }
    Ok((user.to_string(), password.to_string()))
}

/// A process-wide secret, for servers not given the cluster's (see
/// [`ScramServer::with_stand_in_key`]): stand-in salts for unknown users are derived from
/// it, so they are stable (asking twice gives the same salt).
fn stand_in_secret() -> &'static [u8] {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    SECRET.get_or_init(|| random(32))
}

/// A credential no proof matches, for a user that does not exist: the exchange goes on
/// as for a real user and fails at the proof, as a wrong password does.
fn stand_in(user: &str, mechanism: ScramMechanism, key: &[u8]) -> ScramCredential {
    let mut salt = hmac(mechanism, key, user.as_bytes());
    salt.truncate(32);
    ScramCredential {
        user: user.to_string(),
        mechanism,
        // What `silt users add` stores, so the count does not tell a stand-in apart.
        iterations: DEFAULT_ITERATIONS,
        salt,
        stored_key: random(output_len(mechanism)),
        server_key: random(output_len(mechanism)),
    }
}

/// The iteration count `silt users add` uses unless told otherwise.
pub const DEFAULT_ITERATIONS: u32 = 8192;

/// A credential no password matches, for checking a password of a user that does not
/// exist at the cost of a real check (PLAIN, HTTP basic auth).
pub fn stand_in_credential(user: &str, key: &[u8]) -> ScramCredential {
    stand_in(user, ScramMechanism::Sha512, key)
}

/// A SCRAM user name: `=2C` and `=3D` stand for `,` and `=`.
fn decode_name(raw: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::Malformed("bad escape in the user name".into())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn attribute(part: &str, name: char) -> Option<&str> {
    let mut chars = part.chars();
    (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
}

enum Stage {
    Start,
    SentFirst(Box<SentFirst>),
    Done,
}

struct SentFirst {
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The server side of one SCRAM exchange: client-first → [`ScramServer::client_first`]
/// (the user to look up) → [`ScramServer::server_first`] → client-final →
/// [`ScramServer::client_final`] (the authenticated user and the server's signature).
pub struct ScramServer {
    mechanism: ScramMechanism,
    stage: Stage,
    /// Set by `client_first`, used by `server_first`.
    pending: Option<(String, String, String, String)>,
    /// The user the client named.
    user: Option<String>,
    /// The key of stand-in credentials (the cluster's, so every node answers an unknown
    /// user alike); `None`: a per-process one.
    stand_in_key: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self {
            mechanism,
            stage: Stage::Start,
            pending: None,
            user: None,
            stand_in_key: None,
        }
    }

    /// Derives stand-in credentials for unknown users from `key` (the cluster's secret)
    /// instead of a per-process one.
    pub fn set_stand_in_key(&mut self, key: Arc<[u8]>) {
        self.stand_in_key = Some(key);
    }

    /// The user the client named in its first message, once read.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Reads the client-first message; returns the user whose credential is needed.
    pub fn client_first(&mut self, message: &[u8]) -> Result<String, SaslError> {
        if !matches!(self.stage, Stage::Start) || self.pending.is_some() {
            return Err(SaslError::Malformed("client-first sent twice".into()));
        }
        let text = std::str::from_utf8(message)
            .map_err(|_| SaslError::Malformed("SCRAM message is not UTF-8".into()))?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut split = text.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (split.next(), split.next(), split.next())
        else {
            return Err(SaslError::Malformed("no GS2 header".into()));
        };
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => {
                return Err(SaslError::Unsupported("channel binding".into()));
            }
            _ => return Err(SaslError::Malformed("bad channel-binding flag".into())),
        }
        let mut parts = bare.split(',');
        let user = parts
            .next()
            .and_then(|p| attribute(p, 'n'))
            .ok_or_else(|| SaslError::Malformed("client-first names no user".into()))?;
        let user = decode_name(user)?;
        if user.is_empty() {
            return Err(SaslError::Malformed("empty user name".into()));
        }
        if !authzid.is_empty() && attribute(authzid, 'a').map(decode_name) != Some(Ok(user.clone()))
        {
            return Err(SaslError::Unsupported(
                "an authorisation identity other than the user's own".into(),
            ));
        }
        let nonce = parts
            .next()
            .and_then(|p| attribute(p, 'r'))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| SaslError::Malformed("client-first has no nonce".into()))?;
        for extension in parts {
            // Kafka clients mark delegation-token logins so; Silt has no such tokens.
            if extension == "tokenauth=true" {
                return Err(SaslError::Unsupported("delegation tokens".into()));
            }
        }
        let gs2_header = format!("{flag},{authzid},");
        self.user = Some(user.clone());
        self.pending = Some((
            user.clone(),
            gs2_header,
            bare.to_string(),
            nonce.to_string(),
        ));
        Ok(user)
    }

    /// The server-first message, for the user's credential (`None`: the user does not
    /// exist, and the exchange will fail at the proof).
    pub fn server_first(&mut self, credential: Option<ScramCredential>) -> Vec<u8> {
        let server_nonce = B64.encode(random(18));
        self.server_first_with_nonce(credential, &server_nonce)
    }

    fn server_first_with_nonce(
        &mut self,
        credential: Option<ScramCredential>,
        server_nonce: &str,
    ) -> Vec<u8> {
        let Some((user, gs2_header, client_first_bare, client_nonce)) = self.pending.take() else {
            self.stage = Stage::Done;
            return Vec::new();
        };
        let credential = credential
            .filter(|c| c.mechanism == self.mechanism)
            .unwrap_or_else(|| {
                let key = self.stand_in_key.as_deref().unwrap_or(stand_in_secret());
                stand_in(&user, self.mechanism, key)
            });
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let out = server_first.clone().into_bytes();
        self.stage = Stage::SentFirst(Box::new(SentFirst {
            user,
            credential,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        }));
        out
    }

    /// Checks the client-final message; returns the authenticated user and the
    /// server-final message (the server's signature, which the client verifies).
    pub fn client_final(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
        let Stage::SentFirst(sent) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return Err(SaslError::Malformed("client-final out of turn".into()));
        };
        let SentFirst {
            user,
            credential,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = *sent;
        let m = self.mechanism;
        let text = std::str::from_utf8(message)
            .map_err(|_| SaslError::Malformed("SCRAM message is not UTF-8".into()))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| SaslError::Malformed("client-final has no proof".into()))?;
        let mut parts = without_proof.split(',');
        let binding = parts
            .next()
            .and_then(|p| attribute(p, 'c'))
            .ok_or_else(|| SaslError::Malformed("client-final has no channel binding".into()))?;
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(SaslError::Malformed(
                "channel binding differs from the GS2 header".into(),
            ));
        }
        let their_nonce = parts
            .next()
            .and_then(|p| attribute(p, 'r'))
            .ok_or_else(|| SaslError::Malformed("client-final has no nonce".into()))?;
        // RFC 5802 wants the nonce of server-first back. librdkafka sends the client's part
        // again in front of it; Kafka accepts any nonce ending with its own, and so do we
        // (the proof covers the message as sent either way).
        if !their_nonce.ends_with(&nonce) {
            return Err(SaslError::Malformed(
                "nonce differs from the server's".into(),
            ));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| SaslError::Malformed("proof is not base64".into()))?;
        if proof.len() != output_len(m) {
            return Err(SaslError::InvalidCredentials);
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if constant_time::verify_slices_are_equal(&hash(m, &client_key), &credential.stored_key)
            .is_err()
        {
            return Err(SaslError::InvalidCredentials);
        }
        let server_signature = hmac(m, &credential.server_key, auth_message.as_bytes());
        Ok((
            user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange, with a credential derived from its password and salt.
    #[test]
    fn the_rfc_7677_exchange_checks() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let credential =
            credential_from_salted_password("user", ScramMechanism::Sha256, 4096, salt, &salted);
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let user = server
            .client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .expect("client-first");
        assert_eq!(user, "user");
        let first =
            server.server_first_with_nonce(Some(credential), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            String::from_utf8(first).expect("utf-8"),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, last) = server
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .expect("the proof checks");
        assert_eq!(user, "user");
        assert_eq!(
            String::from_utf8(last).expect("utf-8"),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// A client side of the exchange, written from RFC 5802, to drive the server.
    fn client_exchange(
        server: &mut ScramServer,
        credential: Option<ScramCredential>,
        user: &str,
        password: &str,
        nonce_prefix: &str,
    ) -> Result<(String, Vec<u8>), SaslError> {
        let m = server.mechanism();
        let bare = format!(
            "n={},r=abcdefgh",
            user.replace('=', "=3D").replace(',', "=2C")
        );
        server.client_first(format!("n,,{bare}").as_bytes())?;
        let first = String::from_utf8(server.server_first(credential)).expect("utf-8");
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for part in first.split(',') {
            match &part[..2] {
                "r=" => nonce = &part[2..],
                "s=" => salt = B64.decode(&part[2..]).expect("salt"),
                "i=" => iterations = part[2..].parse().expect("iterations"),
                _ => {}
            }
        }
        let without_proof = format!("c=biws,r={nonce_prefix}{nonce}");
        let auth = format!("{bare},{first},{without_proof}");
        let salted = salted_password(m, password, &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let signature = hmac(m, &hash(m, &client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let (who, last) =
            server.client_final(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())?;
        let server_key = hmac(m, &salted, b"Server Key");
        assert_eq!(
            String::from_utf8(last.clone()).expect("utf-8"),
            format!("v={}", B64.encode(hmac(m, &server_key, auth.as_bytes())))
        );
        Ok((who, last))
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_others() {
        for m in ScramMechanism::ALL {
            let credential = new_credential("al,i=ce", "s3cret", m, 4096);
            assert!(verify_password(&credential, "s3cret"));
            assert!(!verify_password(&credential, "s3cret "));
            let (who, _) = client_exchange(
                &mut ScramServer::new(m),
                Some(credential.clone()),
                "al,i=ce",
                "s3cret",
                "",
            )
            .expect("right password");
            // librdkafka repeats its own nonce in front of the server's.
            client_exchange(
                &mut ScramServer::new(m),
                Some(credential.clone()),
                "al,i=ce",
                "s3cret",
                "abcdefgh",
            )
            .expect("librdkafka's nonce");
            assert_eq!(who, "al,i=ce");
            let wrong = client_exchange(
                &mut ScramServer::new(m),
                Some(credential),
                "al,i=ce",
                "guess",
                "",
            );
            assert_eq!(wrong, Err(SaslError::InvalidCredentials));
            // An unknown user fails the same way, at the proof.
            let unknown = client_exchange(&mut ScramServer::new(m), None, "nobody", "guess", "");
            assert_eq!(unknown, Err(SaslError::InvalidCredentials));
        }
    }

    #[test]
    fn unknown_users_get_a_stable_salt() {
        let first = |user: &str| {
            let mut s = ScramServer::new(ScramMechanism::Sha512);
            s.client_first(format!("n,,n={user},r=xyz").as_bytes())
                .expect("first");
            let text = String::from_utf8(s.server_first(None)).expect("utf-8");
            text.split(',').nth(1).expect("salt").to_string()
        };
        assert_eq!(first("ghost"), first("ghost"));
        assert_ne!(first("ghost"), first("phantom"));
        // With the cluster's key, any server (any node, after any restart) answers alike.
        let keyed = |user: &str| {
            let mut s = ScramServer::new(ScramMechanism::Sha512);
            s.set_stand_in_key(Arc::from(&b"cluster secret"[..]));
            s.client_first(format!("n,,n={user},r=xyz").as_bytes())
                .expect("first");
            let text = String::from_utf8(s.server_first(None)).expect("utf-8");
            text.split(',').nth(1).expect("salt").to_string()
        };
        assert_eq!(keyed("ghost"), keyed("ghost"));
        assert_ne!(keyed("ghost"), first("ghost"));
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=a=2Xb,r=abc",
            b"p=tls-unique,,n=a,r=abc",
            b"n,a=bob,n=alice,r=abc",
            b"n,,n=alice,r=abc,tokenauth=true",
            b"\xff\xfe",
        ] {
            assert!(
                ScramServer::new(ScramMechanism::Sha256)
                    .client_first(bad)
                    .is_err(),
                "{bad:?}"
            );
        }
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        s.client_first(b"n,,n=alice,r=abc").expect("first");
        let _ = s.server_first(None);
        assert!(s.client_final(b"c=biws,r=wrong,p=AAAA").is_err());
        // Out of turn.
        assert!(s.client_final(b"c=biws,r=abc,p=AAAA").is_err());
    }

    #[test]
    fn plain_messages_parse() {
        assert_eq!(
            parse_plain(b"\0alice\0pw"),
            Ok(("alice".into(), "pw".into()))
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0pw"),
            Ok(("alice".into(), "pw".into()))
        );
        assert!(parse_plain(b"bob\0alice\0pw").is_err());
        assert!(parse_plain(b"alice\0pw").is_err());
        assert!(parse_plain(b"\0\0pw").is_err());
    }
}
