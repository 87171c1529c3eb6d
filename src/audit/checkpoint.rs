//! Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with ed25519.
//!
//! Keys use the text encodings of Go's `golang.org/x/mod/sumdb/note`, so checkpoints and
//! keys interoperate with the Go tooling (and any C2SP witness) without clawgate:
//!
//! * verifier key: `<name>+<hex8 key id>+<base64(0x01 || public key)>`
//! * private key:  `PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || seed)>`
//! * key id:       first 4 bytes, big-endian, of `SHA-256(name || "\n" || 0x01 || public key)`
//!
//! A signed note is the text, a blank line, then lines `— <name> <base64(key id || sig)>`.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Signature type byte for ed25519 in the signed-note spec.
const ALG_ED25519: u8 = 0x01;
/// Separator between a note's text and its signature lines: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Same cap as Go's `note.Open`, so a hostile note cannot make us verify forever.
const MAX_SIGNATURES: usize = 100;
/// Far larger than any checkpoint; bounds work on hostile input before anything else.
const MAX_NOTE_BYTES: usize = 1 << 20;
/// A key file is one short line; refuse to slurp anything big.
const MAX_KEY_FILE_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    #[error("note has no signature by key {name}+{key_id:08x}")]
    NoSignatureByKey { name: String, key_id: u32 },
    #[error("invalid signature by key {name}+{key_id:08x}")]
    BadSignature { name: String, key_id: u32 },
    #[error("malformed checkpoint body: {0}")]
    MalformedBody(String),
    #[error("malformed note key: {0}")]
    MalformedKey(String),
    #[error("invalid key name {0:?}: it must be non-empty without spaces or '+'")]
    InvalidName(String),
    #[error(
        "checkpoint key file {} has mode {mode:03o}; it must not be accessible by group or \
         others: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error("checkpoint key file {} holds a key named {found:?}, expected {expected:?}", path.display())]
    KeyNameMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("checkpoint key file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read OS randomness for a new key: {0}")]
    Random(String),
}

fn malformed_note(why: &str) -> CheckpointError {
    CheckpointError::MalformedNote(why.to_string())
}

fn malformed_body(why: &str) -> CheckpointError {
    CheckpointError::MalformedBody(why.to_string())
}

fn malformed_key(why: &str) -> CheckpointError {
    CheckpointError::MalformedKey(why.to_string())
}

/// A tree head: the note text that a checkpoint signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity, `clawgate/<instance id>`.
    pub origin: String,
    /// Number of leaves (audit entries) in the tree.
    pub size: u64,
    /// RFC 6962 root of the first `size` entry hashes.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Checks what `body()` cannot: an origin that would change how the body parses.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        validate_origin(&self.origin)
    }

    /// Parses exactly what [`Self::body`] writes. Extension lines are refused: clawgate
    /// never writes them, and accepting them would mean signed text this type drops.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let text = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed_body("does not end with a newline"))?;
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed_body(
                "expected three lines: origin, tree size, root hash",
            ));
        };
        if lines.next().is_some() {
            return Err(malformed_body(
                "unexpected lines after the root hash (extension lines are not supported)",
            ));
        }
        validate_origin(origin)?;
        let size = parse_tree_size(size)?;
        let root = decode_canonical(root)
            .ok_or_else(|| malformed_body("root hash is not canonical standard base64"))?
            .try_into()
            .map_err(|_| malformed_body("root hash is not 32 bytes"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

fn validate_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() {
        return Err(malformed_body("empty origin"));
    }
    // Signed notes may not hold control characters, and a newline would reframe the body.
    if origin.chars().any(|c| c.is_control()) {
        return Err(malformed_body(
            "origin contains a newline or control character",
        ));
    }
    Ok(())
}

fn parse_tree_size(line: &str) -> Result<u64, CheckpointError> {
    // `u64::from_str` alone would also take "+5" and "007"; the spec allows neither.
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed_body("tree size is not a decimal number"));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(malformed_body("tree size has leading zeros"));
    }
    line.parse()
        .map_err(|_| malformed_body("tree size does not fit in 64 bits"))
}

/// Standard base64 that re-encodes to the same text, so one value has one spelling.
fn decode_canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(text).ok()?;
    (B64.encode(&bytes) == text).then_some(bytes)
}

/// Key name rule of the signed-note spec (and Go's `isValidName`).
fn validate_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(CheckpointError::InvalidName(name.to_string()));
    }
    // Control characters are not whitespace but would still make every note malformed.
    if name.chars().any(char::is_control) {
        return Err(CheckpointError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Signed-note key id of an ed25519 key.
fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn parse_key_id(hex8: &str) -> Result<u32, CheckpointError> {
    // `from_str_radix` would also accept a sign; the format is exactly 8 hex digits.
    if hex8.len() != 8 || !hex8.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed_key("key id is not 8 hex digits"));
    }
    u32::from_str_radix(hex8, 16).map_err(|_| malformed_key("key id is not 8 hex digits"))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_ed25519_key_material(b64: &str) -> Result<[u8; 32], CheckpointError> {
    let bytes = B64
        .decode(b64)
        .map_err(|_| malformed_key("key material is not standard base64"))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| malformed_key("ed25519 key material is not 32 bytes")),
        Some(_) => Err(malformed_key("unsupported key algorithm (only ed25519)")),
        None => Err(malformed_key("empty key material")),
    }
}

fn encode_ed25519_key_material(key: &[u8; 32]) -> String {
    let mut bytes = [0u8; 33];
    bytes[0] = ALG_ED25519;
    bytes[1..].copy_from_slice(key);
    B64.encode(bytes)
}

/// An ed25519 note signing key with its name.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

// Hand-written so that the secret never ends up in a log line.
impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, CheckpointError> {
        validate_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, &key.verifying_key().to_bytes());
        Ok(NoteSigner {
            name: name.to_string(),
            key_id,
            key,
        })
    }

    /// A fresh key from OS randomness.
    pub fn generate(name: &str) -> Result<NoteSigner, CheckpointError> {
        validate_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CheckpointError::Random(e.to_string()))?;
        NoteSigner::from_seed(name, &seed)
    }

    /// Parses a Go-format private key, `PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>`.
    pub fn from_private_key(text: &str) -> Result<NoteSigner, CheckpointError> {
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or_else(|| malformed_key("private key does not start with PRIVATE+KEY+"))?;
        // Names cannot hold '+', but base64 can: split at the first two only.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed_key(
                "private key has too few '+'-separated fields",
            ));
        };
        validate_name(name)?;
        let id = parse_key_id(id)?;
        let seed = decode_ed25519_key_material(material)?;
        let signer = NoteSigner::from_seed(name, &seed)?;
        // The id is a hash of the public key, which we only now know.
        if signer.key_id != id {
            return Err(malformed_key("key id does not match the key"));
        }
        Ok(signer)
    }

    fn private_key(&self) -> String {
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_ed25519_key_material(&self.key.to_bytes())
        )
    }

    /// Loads the key at `path`, or creates one (mode 0600) if there is none yet.
    ///
    /// An existing file must not be accessible by group or others and must hold a key
    /// named `name`; either mistake is an error rather than something to paper over.
    pub fn load_or_create(path: &Path, name: &str) -> Result<NoteSigner, CheckpointError> {
        validate_name(name)?;
        match load_key_file(path, name) {
            Err(CheckpointError::KeyFile { source, .. })
                if source.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        let signer = NoteSigner::generate(name)?;
        match create_key_file(path, &signer.private_key()) {
            Ok(()) => Ok(signer),
            // Another process created it between our look and our create: use theirs.
            Err(CheckpointError::KeyFile { source, .. })
                if source.kind() == ErrorKind::AlreadyExists =>
            {
                load_key_file(path, name)
            }
            Err(e) => Err(e),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Go-format verifier key, `<name>+<hex8>+<base64(0x01 || public key)>`: what
    /// `clawgate audit pubkey` prints and what auditors configure.
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_ed25519_key_material(&self.key.verifying_key().to_bytes())
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs arbitrary note text (newline-terminated, no control characters besides
    /// newline) and returns the signed note.
    pub fn sign_text(&self, text: &str) -> Result<String, CheckpointError> {
        if !text.ends_with('\n') {
            return Err(malformed_note("text does not end with a newline"));
        }
        check_note_chars(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = [0u8; 4 + 64];
        blob[..4].copy_from_slice(&self.key_id.to_be_bytes());
        blob[4..].copy_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }

    /// The signed checkpoint note. Fails only on an origin that cannot be framed.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        checkpoint.validate()?;
        self.sign_text(&checkpoint.body())
    }
}

fn key_file_error(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::KeyFile {
        path: path.to_path_buf(),
        source,
    }
}

fn load_key_file(path: &Path, name: &str) -> Result<NoteSigner, CheckpointError> {
    let file = fs::File::open(path).map_err(|e| key_file_error(path, e))?;
    // Check the mode of the file we opened, not of whatever the path names a moment later.
    let meta = file.metadata().map_err(|e| key_file_error(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CheckpointError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| key_file_error(path, e))?;
    let signer = NoteSigner::from_private_key(text.trim_end())?;
    if signer.name != name {
        return Err(CheckpointError::KeyNameMismatch {
            path: path.to_path_buf(),
            expected: name.to_string(),
            found: signer.name,
        });
    }
    Ok(signer)
}

/// Writes a new key file without ever replacing an existing one and without ever leaving
/// a half-written key at `path`: write and fsync a private temp file, then hard-link it
/// into place (which fails if `path` already exists).
fn create_key_file(path: &Path, private_key: &str) -> Result<(), CheckpointError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| key_file_error(path, ErrorKind::InvalidInput.into()))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| CheckpointError::Random(e.to_string()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = dir.join(tmp_name);

    let result = write_new_private_file(&tmp, private_key)
        .and_then(|()| fs::hard_link(&tmp, path))
        .map_err(|e| key_file_error(path, e));
    // The temp name is random and private; failing to remove it only leaves litter.
    let _ = fs::remove_file(&tmp);
    result?;
    // Make the new directory entry durable too; a failure here is not worth failing over.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_new_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// An ed25519 note verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a Go-format verifier key, `<name>+<hex8>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<NoteVerifier, CheckpointError> {
        let text = text.trim();
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed_key(
                "verifier key is not <name>+<key id>+<base64 key>",
            ));
        };
        validate_name(name)?;
        let id = parse_key_id(id)?;
        let public = decode_ed25519_key_material(material)?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| malformed_key("not a valid ed25519 public key"))?;
        if key_id(name, &public) != id {
            return Err(malformed_key("key id does not match the key"));
        }
        Ok(NoteVerifier {
            name: name.to_string(),
            key_id: id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

fn check_note_chars(text: &str) -> Result<(), CheckpointError> {
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed_note("contains a control character"));
    }
    Ok(())
}

/// Checks a signed note against `verifier` and returns its text (everything before the
/// blank line, including the text's final newline).
///
/// Signatures by other keys are ignored, as the spec requires; a signature by this key that
/// does not verify fails the whole note even if another copy does.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, CheckpointError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(malformed_note("note is too large"));
    }
    check_note_chars(note)?;
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed_note("no blank line before the signatures"))?;
    // Both halves are split at ASCII newlines, so these are char boundaries.
    let (text, rest) = note.split_at(split + 1);
    let sigs = rest.strip_prefix('\n').unwrap_or(rest);
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(malformed_note("missing signature lines or final newline"));
    };

    let mut verified = false;
    for (n, line) in sigs.split('\n').enumerate() {
        if n >= MAX_SIGNATURES {
            return Err(malformed_note("too many signatures"));
        }
        let line = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| malformed_note("signature line does not start with an em dash"))?;
        let (name, b64) = line
            .split_once(' ')
            .ok_or_else(|| malformed_note("signature line has no signature"))?;
        if validate_name(name).is_err() {
            return Err(malformed_note("signature line has an invalid key name"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| malformed_note("signature is not standard base64"))?;
        let Some((id, sig)) = blob.split_first_chunk::<4>() else {
            return Err(malformed_note("signature is shorter than a key id"));
        };
        if sig.is_empty() {
            return Err(malformed_note("signature is empty"));
        }
        if name != verifier.name || u32::from_be_bytes(*id) != verifier.key_id {
            continue;
        }
        let bad = || CheckpointError::BadSignature {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
        };
        let sig: &[u8; 64] = sig.try_into().map_err(|_| bad())?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(sig))
            .map_err(|_| bad())?;
        verified = true;
    }
    if !verified {
        return Err(CheckpointError::NoSignatureByKey {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
        });
    }
    Ok(text)
}

/// Checks a signed checkpoint against `verifier` and parses its body.
pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::parse_body(open_note(note, verifier)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the documentation of Go's golang.org/x/mod/sumdb/note.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
        then you don't know what your problem is.\n\
        \n\
        \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "clawgate/test-instance".to_string(),
            size: 20852163,
            root: [0xab; 32],
        }
    }

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::generate(name).expect("generate")
    }

    #[test]
    fn body_format() {
        let cp = Checkpoint {
            origin: "example.com/behind-the-sofa".to_string(),
            size: 20852163,
            root: B64
                .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
                .expect("b64")
                .try_into()
                .expect("32"),
        };
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(cp.body(), body);
        assert_eq!(Checkpoint::parse_body(body).expect("parses"), cp);
        let empty = Checkpoint {
            size: 0,
            ..cp.clone()
        };
        assert_eq!(
            Checkpoint::parse_body(&empty.body()).expect("size 0"),
            empty
        );
    }

    #[test]
    fn go_reference_vector_interoperates() {
        let signer = NoteSigner::from_private_key(GO_SKEY).expect("Go private key");
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(signer.private_key(), GO_SKEY);
        // ed25519 is deterministic, so we must reproduce Go's note byte for byte.
        assert_eq!(signer.sign_text(GO_TEXT).expect("sign"), GO_NOTE);
        let verifier = NoteVerifier::parse(GO_VKEY).expect("Go verifier key");
        assert_eq!(verifier, signer.verifier());
        assert_eq!(open_note(GO_NOTE, &verifier).expect("opens"), GO_TEXT);
        // A valid note whose text is not a checkpoint body.
        assert!(matches!(
            open(GO_NOTE, &verifier),
            Err(CheckpointError::MalformedBody(_))
        ));
    }

    #[test]
    fn key_id_follows_the_spec_definition() {
        let s = signer("clawgate/abc");
        let public = s.key.verifying_key().to_bytes();
        let mut preimage = b"clawgate/abc\n\x01".to_vec();
        preimage.extend_from_slice(&public);
        let digest = Sha256::digest(&preimage);
        let want = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert_eq!(s.key_id(), want);
        let vkey = s.verifier_key();
        let mut material = vec![0x01];
        material.extend_from_slice(&public);
        assert_eq!(
            vkey,
            format!("clawgate/abc+{want:08x}+{}", B64.encode(&material))
        );
        // The Go vector, computed from the definition rather than trusted from the string.
        let go = NoteVerifier::parse(GO_VKEY).expect("parse");
        let mut preimage = b"PeterNeumann\n\x01".to_vec();
        preimage.extend_from_slice(&go.key.to_bytes());
        let digest = Sha256::digest(&preimage);
        assert_eq!(&digest[..4], &[0xc7, 0x4f, 0x20, 0xa3]);
    }

    #[test]
    fn sign_open_round_trip() {
        let s = signer("clawgate/test-instance");
        let note = s.sign(&checkpoint()).expect("sign");
        assert!(note.starts_with(&checkpoint().body()));
        let last = note.lines().last().expect("signature line");
        assert!(last.starts_with("\u{2014} clawgate/test-instance "));
        let v = NoteVerifier::parse(&s.verifier_key()).expect("parse");
        assert_eq!(open(&note, &v).expect("open"), checkpoint());
    }

    #[test]
    fn other_keys_signature_is_not_ours() {
        let ours = signer("clawgate/test-instance");
        let theirs = signer("clawgate/test-instance");
        let note = theirs.sign(&checkpoint()).expect("sign");
        match open(&note, &ours.verifier()) {
            Err(CheckpointError::NoSignatureByKey { name, key_id }) => {
                assert_eq!(name, "clawgate/test-instance");
                assert_eq!(key_id, ours.key_id());
            }
            other => panic!("expected NoSignatureByKey, got {other:?}"),
        }
        // With an extra foreign signature line, ours still verifies.
        let ours_note = ours.sign(&checkpoint()).expect("sign");
        let foreign_line = note.rsplit_once("\n\n").expect("split").1;
        let both = format!("{ours_note}{foreign_line}");
        assert_eq!(open(&both, &ours.verifier()).expect("open"), checkpoint());
    }

    #[test]
    fn signature_with_our_id_but_wrong_bytes_is_bad() {
        // Same name and key id (so the line is "ours") but a signature by another key.
        let ours = signer("clawgate/x");
        let other = NoteSigner {
            name: ours.name.clone(),
            key_id: ours.key_id,
            key: signer("clawgate/x").key,
        };
        let note = other.sign(&checkpoint()).expect("sign");
        assert!(matches!(
            open(&note, &ours.verifier()),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn flipped_bytes_fail() {
        let s = signer("clawgate/test-instance");
        let v = s.verifier();
        let note = s.sign(&checkpoint()).expect("sign");
        // Every byte of the body: flip a bit (keeping it ASCII and not a newline).
        let body_len = checkpoint().body().len();
        for i in 0..body_len {
            let mut bytes = note.clone().into_bytes();
            if bytes[i] == b'\n' {
                continue;
            }
            bytes[i] ^= 0x01;
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(open(&tampered, &v).is_err(), "body byte {i}");
        }
        // Every signature byte (decoded, re-encoded).
        let (head, b64) = note.trim_end().rsplit_once(' ').expect("sig");
        let blob = B64.decode(b64).expect("b64");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let tampered = format!("{head} {}\n", B64.encode(&bad));
            let err = open(&tampered, &v).expect_err("tampered signature");
            if i < 4 {
                assert!(matches!(err, CheckpointError::NoSignatureByKey { .. }));
            } else {
                assert!(matches!(err, CheckpointError::BadSignature { .. }), "{i}");
            }
        }
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.key");
        let created = NoteSigner::load_or_create(&path, "clawgate/i1").expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("PRIVATE+KEY+clawgate/i1+"));
        let loaded = NoteSigner::load_or_create(&path, "clawgate/i1").expect("load");
        assert_eq!(loaded.verifier_key(), created.verifier_key());
        // Only the key file itself is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
        // A key for another name is refused, not silently replaced.
        assert!(matches!(
            NoteSigner::load_or_create(&path, "clawgate/other"),
            Err(CheckpointError::KeyNameMismatch { .. })
        ));
        assert_eq!(fs::read_to_string(&path).expect("read"), text);
    }

    #[test]
    fn readable_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.key");
        NoteSigner::load_or_create(&path, "clawgate/i1").expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = NoteSigner::load_or_create(&path, "clawgate/i1").expect_err("0644 refused");
        assert!(matches!(
            err,
            CheckpointError::InsecureKeyFile { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn corrupt_key_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, contents) in [
            "",
            "PRIVATE+KEY+",
            "garbage\n",
            "PRIVATE+KEY+a+00000000+AQ==\n",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("k{i}"));
            write_new_private_file(&path, contents).expect("write");
            assert!(
                NoteSigner::load_or_create(&path, "a").is_err(),
                "{contents:?}"
            );
        }
        let missing_dir = dir.path().join("nope").join("k");
        assert!(matches!(
            NoteSigner::load_or_create(&missing_dir, "a"),
            Err(CheckpointError::KeyFile { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_errors() {
        let s = signer("clawgate/i");
        let v = s.verifier();
        let good = s.sign(&checkpoint()).expect("sign");
        let sig_line = good.rsplit_once("\n\n").expect("split").1;
        let foreign = signer("clawgate/other").sign(&checkpoint()).expect("sign");
        let foreign_line = foreign.rsplit_once("\n\n").expect("split").1;
        let body = checkpoint().body();
        let cases: Vec<String> = vec![
            String::new(),
            "\n".into(),
            "\n\n".into(),
            body.clone(),
            format!("{body}{sig_line}"),                // no blank line
            format!("{body}\n"),                        // no signatures
            format!("{body}\n{}", sig_line.trim_end()), // no final newline
            format!("{body}\n- clawgate/i AAAA\n"),     // not an em dash
            format!("{body}\n\u{2014} clawgate/i\n"),   // no signature
            format!("{body}\n\u{2014} clawgate/i !!!!\n"), // bad base64
            format!("{body}\n\u{2014} clawgate/i AAAA\n"), // too short
            format!("{body}\n\u{2014} clawgate/i AAAAAA==\n"), // id only
            format!("{body}\n\u{2014}  {}", &sig_line[4..]), // empty name
            format!("{body}\n\u{2014} a+b AAAAAAA=\n"), // '+' in name
            format!("x\r\n{body}\n{sig_line}"),         // control character
            // Too many signature lines (by an unknown key, so the cap is what rejects it).
            format!("{body}\n{}", foreign_line.repeat(MAX_SIGNATURES + 1)),
            "\u{2014}\n\n\u{2014}\n".into(),
        ];
        for note in &cases {
            assert!(open(note, &v).is_err(), "{note:?}");
        }
        let huge = format!("{}{good}", "x".repeat(MAX_NOTE_BYTES));
        assert!(matches!(
            open(&huge, &v),
            Err(CheckpointError::MalformedNote(_))
        ));
        // Duplicate valid signatures are fine.
        assert!(open(&format!("{good}{sig_line}"), &v).is_ok());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let root = B64.encode([0u8; 32]);
        let cases = [
            String::new(),
            "\n".into(),
            format!("o\n1\n{root}"),                      // no final newline
            format!("\n1\n{root}\n"),                     // empty origin
            format!("o\n\n{root}\n"),                     // empty size
            format!("o\n01\n{root}\n"),                   // leading zero
            format!("o\n+1\n{root}\n"),                   // sign
            format!("o\n-1\n{root}\n"),                   // negative
            format!("o\n1 \n{root}\n"),                   // trailing space
            format!("o\n18446744073709551616\n{root}\n"), // u64::MAX + 1
            format!("o\n{}\n{root}\n", "9".repeat(1000)), // huge
            "o\n1\n\n".into(),                            // empty root
            "o\n1\nAAAA\n".into(),                        // short root
            format!("o\n1\n{}\n", B64.encode([0u8; 33])), // long root
            format!("o\n1\n{}\n", root.trim_end_matches('=')), // unpadded
            "o\n1\n!!!!\n".into(),                        // bad base64
            format!("o\n1\n{root}\next\n"),               // extension line
            format!("o\n1\n{root}\n\n"),                  // trailing blank line
            "o\n1\n".into(),                              // two lines
        ];
        for body in &cases {
            assert!(
                matches!(
                    Checkpoint::parse_body(body),
                    Err(CheckpointError::MalformedBody(_))
                ),
                "{body:?}"
            );
        }
        let max = format!("o\n{}\n{root}\n", u64::MAX);
        assert_eq!(
            Checkpoint::parse_body(&max).expect("u64::MAX").size,
            u64::MAX
        );
    }

    #[test]
    fn unframeable_checkpoints_are_not_signed() {
        let s = signer("clawgate/i");
        for origin in ["", "evil\n999", "tab\there"] {
            let cp = Checkpoint {
                origin: origin.to_string(),
                ..checkpoint()
            };
            assert!(s.sign(&cp).is_err(), "{origin:?}");
        }
        assert!(s.sign_text("no newline").is_err());
        assert!(s.sign_text("bell\x07\n").is_err());
    }

    #[test]
    fn malformed_keys_are_errors() {
        for name in ["", "a b", "a+b", "a\nb", "a\u{2003}b"] {
            assert!(matches!(
                NoteSigner::generate(name),
                Err(CheckpointError::InvalidName(_))
            ));
        }
        let cases = [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a3+",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // wrong id
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // short id
            "PeterNeumann++74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // signed id
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  // bad b64
            "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // truncated
            "PeterNeumann+c74f20a3+AhpcZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // alg 2
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ];
        for key in cases {
            assert!(NoteVerifier::parse(key).is_err(), "{key:?}");
            assert!(
                NoteSigner::from_private_key(&format!("PRIVATE+KEY+{key}")).is_err(),
                "{key:?}"
            );
        }
        assert!(NoteSigner::from_private_key(GO_VKEY).is_err());
        assert!(NoteSigner::from_private_key(&GO_SKEY.replace("c74f20a3", "c74f20a4")).is_err());
    }
}
