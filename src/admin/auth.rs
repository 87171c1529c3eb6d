//! The admin token: operators (and `clawgate approvals ...`) present it as
//! `Authorization: Bearer <token>`. Only its SHA-256 is kept in memory or config.
//!
//! Where it comes from, first match wins: `admin.token_sha256` in config, the
//! `CLAWGATE_ADMIN_TOKEN` environment variable, or `<data_dir>/admin.token`, created with a
//! random token (mode 0600) on first start so the default setup is never open.

use std::path::{Path, PathBuf};

use http::HeaderMap;

use crate::http_api::ApiError;
use crate::token::{TokenHash, bearer};

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("admin.token_sha256 must be 64 hex characters")]
    BadHash,
    #[error("cannot read or create the admin token file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token file {0} is empty")]
    Empty(PathBuf),
}

#[derive(Clone)]
pub struct AdminToken {
    sha256: TokenHash,
    /// Where the token can be read by operators on this host, if it lives in a file.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("file", &self.file)
            .finish()
    }
}

/// The environment variable that carries the admin token (sidecar and CLI alike).
pub const ADMIN_TOKEN_ENV: &str = "CLAWGATE_ADMIN_TOKEN";

impl AdminToken {
    /// From a configured hash, else `CLAWGATE_ADMIN_TOKEN`, else the token file (created when
    /// missing).
    pub fn load(
        configured_sha256: Option<&str>,
        file: &Path,
    ) -> Result<AdminToken, AdminTokenError> {
        if let Some(hash) = configured_sha256 {
            let sha256 = TokenHash::from_hex(hash).ok_or(AdminTokenError::BadHash)?;
            return Ok(AdminToken { sha256, file: None });
        }
        if let Some(token) = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            return Ok(AdminToken {
                sha256: TokenHash::of(token.trim()),
                file: None,
            });
        }
        let token = read_or_create(file)?;
        Ok(AdminToken {
            sha256: TokenHash::of(&token),
            file: Some(file.to_path_buf()),
        })
    }

    /// Hex SHA-256 of a token, the form `admin.token_sha256` takes.
    pub fn hash_hex(token: &str) -> String {
        TokenHash::hex_of(token)
    }

    /// Whether the request carries this token as a bearer credential (constant-time).
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|presented| self.sha256.matches(presented))
    }

    /// `Ok` when the request carries the admin token, else the 401 every admin endpoint
    /// answers.
    pub fn require(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.authorizes(headers) {
            Ok(())
        } else {
            Err(ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the admin token as Authorization: Bearer <token> (see <data_dir>/admin.token or CLAWGATE_ADMIN_TOKEN)",
            ))
        }
    }
}

fn read_or_create(path: &Path) -> Result<String, AdminTokenError> {
    let err = |source| AdminTokenError::File {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Err(AdminTokenError::Empty(path.to_path_buf())),
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| err(std::io::Error::other(e.to_string())))?;
            let token = format!("cgat_{}", hex::encode(raw));
            write_private(path, &token).map_err(err)?;
            Ok(token)
        }
        Err(e) => Err(err(e)),
    }
}

/// Create a file only its owner can read; never overwrite one.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let a = AdminToken::load(None, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap();
        let b = AdminToken::load(None, &path).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
        assert!(a.authorizes(&headers) && b.authorizes(&headers));
        headers.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!a.authorizes(&headers));
        headers.remove(http::header::AUTHORIZATION);
        assert!(!a.authorizes(&headers));
    }

    #[test]
    fn configured_hash_wins() {
        let dir = tempfile::tempdir().unwrap();
        let hash = AdminToken::hash_hex("s3cret");
        let t = AdminToken::load(Some(&hash), &dir.path().join("admin.token")).unwrap();
        assert!(t.file.is_none());
        assert!(!dir.path().join("admin.token").exists());
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "bearer s3cret".parse().unwrap(),
        );
        assert!(t.authorizes(&headers));
        assert!(AdminToken::load(Some("abc"), &dir.path().join("x")).is_err());
    }
}
