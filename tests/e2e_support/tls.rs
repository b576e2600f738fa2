//! A throwaway certificate authority for the TLS tests: a CA, a server certificate it signed
//! for 127.0.0.1 and localhost, and an unrelated CA that must not be trusted. Generated at run
//! time with rcgen; the directory is removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct TestCa {
    pub dir: PathBuf,
    /// The CA certificate clients are told to trust.
    pub ca: PathBuf,
    /// The server's certificate chain and key, signed by `ca`.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA that signed nothing of ours.
    pub other_ca: PathBuf,
    ca_cert: Certificate,
    ca_key: KeyPair,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    (p.self_signed(&key).unwrap(), key)
}

impl TestCa {
    pub fn new(tag: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!("deskd-ca-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_cert, ca_key) = ca(&format!("deskd test CA {tag}"));
        let (other, _) = ca("deskd unrelated CA");
        let t = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
            other_ca: dir.join("other-ca.pem"),
            dir,
            ca_cert,
            ca_key,
        };
        std::fs::write(&t.ca, t.ca_cert.pem()).unwrap();
        std::fs::write(&t.other_ca, other.pem()).unwrap();
        t.issue(&t.cert, &t.key, "127.0.0.1");
        t
    }

    /// Sign a server certificate for 127.0.0.1 and localhost into `cert` and `key`.
    pub fn issue(&self, cert: &Path, key: &Path, cn: &str) {
        let leaf_key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let leaf = p.signed_by(&leaf_key, &self.ca_cert, &self.ca_key).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
    }

    /// A HOME directory whose NSS database (what Chromium on Linux trusts besides its root
    /// store) and gtk-vnc CA file trust this CA.
    pub fn home(&self) -> PathBuf {
        super::require_tool("certutil", "libnss3-tools");
        let home = self.dir.join("home");
        let nss = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nss).unwrap();
        let db = format!("sql:{}", nss.display());
        let ok = Command::new("certutil")
            .args(["-N", "--empty-password", "-d", &db])
            .status()
            .unwrap()
            .success();
        assert!(ok, "certutil -N failed");
        let ok = Command::new("certutil")
            .args(["-A", "-t", "C,,", "-n", "deskd test CA", "-d", &db, "-i"])
            .arg(&self.ca)
            .status()
            .unwrap()
            .success();
        assert!(ok, "certutil -A failed");
        // gtk-vnc reads $HOME/.pki/CA/cacert.pem.
        let gtk = home.join(".pki/CA");
        std::fs::create_dir_all(&gtk).unwrap();
        std::fs::copy(&self.ca, gtk.join("cacert.pem")).unwrap();
        home
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
