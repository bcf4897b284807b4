//! Throwaway CA and server certificate, made with the `openssl` CLI.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate valid for `localhost`, 127.0.0.1 and ::1.
#[derive(Debug, Clone)]
pub struct Certs {
    pub dir: PathBuf,
    /// CA certificate (PEM): give to clients as `--cacert` / `cafile`.
    pub ca: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// Server private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Runs `openssl` with whitespace-separated `args` (none contain spaces).
fn openssl(dir: &Path, args: &str) -> Result<()> {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .context("run openssl (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Certs {
    pub fn generate(dir: &Path) -> Result<Certs> {
        std::fs::create_dir_all(dir)?;
        openssl(
            dir,
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
             -subj /CN=qmon-e2e-test-CA",
        )?;
        openssl(
            dir,
            "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
        )?;
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            dir,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
             -out server.pem -days 2 -extfile ext.cnf",
        )?;
        Ok(Certs {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        })
    }
}
