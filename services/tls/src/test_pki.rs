//! Throwaway certificates for tests (feature `test-pki`): an authority, a server
//! certificate for `localhost` and 127.0.0.1, and client certificates.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{ClientAuth, TlsSettings};

/// PEM files in a temporary folder: `ca.pem`, `server.pem`/`.key` (for `localhost` and
/// 127.0.0.1), `alice.pem`/`.key` (signed by the authority) and `mallory.pem`/`.key`
/// (self-signed).
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        let issuer = Issuer::new(ca, ca_key);

        let write = |name: &str, params: CertificateParams, signed: bool| {
            let key = KeyPair::generate().expect("key");
            let cert = if signed {
                params.signed_by(&key, &issuer)
            } else {
                params.self_signed(&key)
            }
            .expect("certificate");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("write");
        };
        let mut server = CertificateParams::new(vec!["localhost".into()]).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write("server", server, true);
        for (name, signed) in [("alice", true), ("mallory", false)] {
            let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
            // Organisation, then common name: RFC 2253 writes them the other way round.
            client.distinguished_name = rcgen::DistinguishedName::new();
            client
                .distinguished_name
                .push(DnType::OrganizationName, "Example, Inc.");
            client.distinguished_name.push(DnType::CommonName, name);
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            write(name, client, signed);
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file's bytes.
    pub fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("pem")
    }

    /// Server settings with the server certificate and the given client policy.
    pub fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert_file: Some(self.path("server.pem")),
            key_file: Some(self.path("server.key")),
            client_ca_file: (client_auth != ClientAuth::None).then(|| self.path("ca.pem")),
            client_auth,
            ca_file: Some(self.path("ca.pem")),
            principal: crate::PrincipalFrom::Subject,
        }
    }

    /// A client trusting the authority, presenting `cert` (`alice`, `mallory`) if given.
    pub fn client(&self, cert: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.path("ca.pem")).expect("ca") {
            roots.add(ca.expect("ca")).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                    .expect("chain")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key =
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}
