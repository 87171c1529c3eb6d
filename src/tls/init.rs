//! `clawgate certs init`: a CA, a server certificate for the listeners and one client
//! certificate per agent identity, written as PEM files into one directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::TlsError;
use super::ca::CertificateAuthority;

/// What `certs init` creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// DNS names and IP addresses the server certificate is valid for.
    pub hosts: Vec<String>,
    /// Agent identities; each gets `agent-NAME.pem`/`.key` with subject CN = NAME.
    pub agents: Vec<String>,
    /// Validity of every certificate, in days from now.
    pub days: u32,
    /// Replace existing files instead of refusing.
    pub force: bool,
}

/// One file `certs init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    /// A private key (mode 0600).
    pub private_key: bool,
}

/// The CA certificate's file name in the directory (what clients trust).
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";

/// Create the CA, server and agent certificates. Nothing is written when any target file
/// exists (unless `force`), when an agent name cannot be a file name, or when generation fails.
pub fn init(opts: &InitOptions) -> Result<Vec<WrittenFile>, TlsError> {
    for name in &opts.agents {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !name.starts_with('.');
        if !ok {
            return Err(TlsError::InvalidAgentName { name: name.clone() });
        }
    }
    let ca = CertificateAuthority::create("clawgate CA", opts.days)?;
    let server = ca.issue_server(&opts.hosts, opts.days)?;
    let mut files: Vec<(PathBuf, String, bool)> = vec![
        (opts.dir.join(CA_CERT), ca.cert_pem().to_string(), false),
        (opts.dir.join(CA_KEY), ca.key_pem(), true),
        (opts.dir.join(SERVER_CERT), server.cert_pem, false),
        (opts.dir.join(SERVER_KEY), server.key_pem, true),
    ];
    for name in &opts.agents {
        let client = ca.issue_client(name, opts.days)?;
        files.push((
            opts.dir.join(format!("agent-{name}.pem")),
            client.cert_pem,
            false,
        ));
        files.push((
            opts.dir.join(format!("agent-{name}.key")),
            client.key_pem,
            true,
        ));
    }
    if !opts.force
        && let Some((path, _, _)) = files.iter().find(|(path, _, _)| path.exists())
    {
        return Err(TlsError::Exists { path: path.clone() });
    }
    std::fs::create_dir_all(&opts.dir).map_err(|source| TlsError::Write {
        path: opts.dir.clone(),
        source,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for (path, text, private_key) in files {
        write_new(
            &path,
            text.as_bytes(),
            if private_key { 0o600 } else { 0o644 },
            opts.force,
        )?;
        written.push(WrittenFile { path, private_key });
    }
    Ok(written)
}

/// Create `path` with `mode` from the start (a key is never readable by others, not even
/// briefly). With `replace`, an existing file is removed first so it gets the new mode.
fn write_new(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    if replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                TlsError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                err(e)
            }
        })?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn options(dir: &Path) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            agents: vec!["main".into(), "ops".into()],
            days: 30,
            force: false,
        }
    }

    #[test]
    fn writes_keys_private_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let written = init(&options(&certs)).unwrap();
        assert_eq!(written.len(), 8);
        for file in &written {
            let mode = std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777;
            if file.private_key {
                assert_eq!(mode, 0o600, "{}", file.path.display());
            } else {
                assert_eq!(mode & 0o077, mode & 0o044, "{}", file.path.display());
            }
        }
        assert!(certs.join("agent-ops.key").exists());
        CertificateAuthority::load(&certs.join(CA_CERT), &certs.join(CA_KEY)).unwrap();

        let before = std::fs::read(certs.join(CA_CERT)).unwrap();
        let err = init(&options(&certs)).unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(certs.join(CA_CERT)).unwrap(), before);

        std::fs::set_permissions(certs.join(CA_KEY), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let forced = InitOptions {
            force: true,
            ..options(&certs)
        };
        init(&forced).unwrap();
        assert_ne!(std::fs::read(certs.join(CA_CERT)).unwrap(), before);
        let mode = std::fs::metadata(certs.join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn agent_names_must_be_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let bad = InitOptions {
            agents: vec!["../evil".into()],
            ..options(dir.path())
        };
        let err = init(&bad).unwrap_err().to_string();
        assert!(err.contains("../evil"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
