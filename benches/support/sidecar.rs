//! The sidecar under test: its policy bundle (copied, patched, with rate limits raised) and
//! where it keeps its state.

use serde_json::json;

/// The policy bundle a bench starts from: `CLAWGATE_BENCH_POLICY_DIR`, else `policies/` (the
/// source of the embedded bundle).
#[allow(dead_code)]
pub fn source_bundle() -> std::path::PathBuf {
    std::env::var_os("CLAWGATE_BENCH_POLICY_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
}

/// Copy a bundle without its `_test.rego` files into `out`, passing each file's name and text
/// through `edit` (e.g. to patch `data.json` or `main.rego`).
#[allow(dead_code)]
pub fn copy_bundle(
    src: &std::path::Path,
    out: &std::path::Path,
    edit: impl Fn(&str, String) -> String,
) -> std::path::PathBuf {
    std::fs::create_dir_all(out).expect("bundle dir");
    for entry in std::fs::read_dir(src).expect("read the policy dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        if !path.is_file() || name.ends_with("_test.rego") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a bundle file");
        std::fs::write(out.join(&name), edit(&name, text)).expect("write a bundle file");
    }
    out.to_path_buf()
}

/// Edit a bundle's `data.json` text with `patch`.
#[allow(dead_code)]
pub fn patch_data(text: &str, patch: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut data: serde_json::Value = serde_json::from_str(text).expect("data.json parses");
    patch(&mut data);
    serde_json::to_string_pretty(&data).expect("JSON serializes")
}

/// Raise every tier's and the fallback rate limit far above what a bench sends: the rate
/// layer still runs, but the shipped limits (5–120 a minute per agent and subject) would
/// refuse a bench within seconds.
#[allow(dead_code)]
pub fn raise_rate_limits(data: &mut serde_json::Value) {
    let c = &mut data["clawgate"];
    c["settings"]["fallback_limits"]["rate_per_minute"] = json!(1_000_000_000u32);
    if let Some(tiers) = c["tiers"].as_object_mut() {
        for tier in tiers.values_mut() {
            tier["constraints"]["rate_per_minute"] = json!(1_000_000_000u32);
        }
    }
}

/// A temp dir for a sidecar's state: in `CLAWGATE_BENCH_DIR` when set (e.g. `/dev/shm`, to
/// take `fdatasync` out of the figures), else in the system temp dir.
#[allow(dead_code)]
pub fn bench_tempdir() -> tempfile::TempDir {
    match std::env::var_os("CLAWGATE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(&dir)
            .unwrap_or_else(|e| panic!("CLAWGATE_BENCH_DIR={dir:?}: cannot make a temp dir: {e}")),
        None => tempfile::tempdir().expect("temp dir"),
    }
}
