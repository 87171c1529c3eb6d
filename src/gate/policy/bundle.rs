//! A policy bundle: the `.rego` files and `data.json` documents that make one policy revision.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use include_dir::{Dir, include_dir};
use regorus::utils::limits::ExecutionTimerConfig;
use sha2::{Digest, Sha256};

use super::PolicyError;

/// The default bundle, compiled into the binary from `policies/`.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/policies");

/// Representative inputs evaluated once at load (results ignored).
const WARM_UP_INPUTS: &[&str] = &[
    r#"{"action":{"kind":"tool","tool":"exec","params":{"command":"ls -la && rm -rf /tmp/x | sh"}},"agent":{"id":"warm-up"},"environment":"production","now":"2026-01-01T00:00:00Z"}"#,
    r#"{"action":{"kind":"tool","tool":"read","params":{"path":"~/.ssh/id_rsa"}},"agent":{"id":"warm-up"},"environment":"production","now":"2026-01-01T00:00:00Z"}"#,
    r#"{"action":{"kind":"tool","tool":"web_fetch","params":{"url":"https://example.com/"}},"agent":{"id":"warm-up"},"environment":"production","now":"2026-01-01T00:00:00Z"}"#,
    r#"{"action":{"kind":"mcp","server":"warm-up","tool":"delete_item","params":{}},"agent":{"id":"warm-up"},"environment":"production","now":"2026-01-01T00:00:00Z"}"#,
    r#"{"action":{"kind":"http","http":{"method":"POST","scheme":"https","host":"example.com","port":443,"path":"/","query":"","headers":{}},"dest":{"host":"example.com","port":443,"ips":["93.184.216.34"]}},"agent":{"id":"warm-up"},"environment":"production","now":"2026-01-01T00:00:00Z"}"#,
];

/// Time allowed for the checks and warm-up evaluations done while loading a bundle.
const LOAD_BUDGET: Duration = Duration::from_secs(10);

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        // Checking the clock every 16 work units keeps the overhead negligible.
        check_interval: NonZeroU32::MIN.saturating_add(15),
    }
}

/// The rule every bundle must define.
pub const ENTRYPOINT: &str = "data.clawgate.decision";

/// Where a bundle's files came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    Embedded,
    Dir(PathBuf),
}

impl std::fmt::Display for BundleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleSource::Embedded => f.write_str("embedded"),
            BundleSource::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Path relative to the bundle root, with `/` separators.
    pub path: String,
    pub text: String,
}

impl BundleFile {
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
    pub fn is_rego(&self) -> bool {
        self.path.ends_with(".rego")
    }
    pub fn is_data(&self) -> bool {
        self.path == "data.json" || self.path.ends_with("/data.json")
    }
}

/// The files of a bundle, in path order, before compilation.
#[derive(Debug, Clone)]
pub struct BundleFiles {
    pub source: BundleSource,
    pub files: Vec<BundleFile>,
}

impl BundleFiles {
    pub fn embedded() -> BundleFiles {
        let mut files = Vec::new();
        collect_embedded(&EMBEDDED, &mut files);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        BundleFiles {
            source: BundleSource::Embedded,
            files,
        }
    }

    /// Read every `.rego` and `data.json` under `dir` (hidden entries skipped).
    pub fn read_dir(dir: &Path) -> Result<BundleFiles, PolicyError> {
        let mut files = Vec::new();
        read_dir_into(dir, dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if !files.iter().any(|f| f.is_rego() && !f.is_test()) {
            return Err(PolicyError::Load(format!(
                "{} holds no .rego policy files",
                dir.display()
            )));
        }
        Ok(BundleFiles {
            source: BundleSource::Dir(dir.to_path_buf()),
            files,
        })
    }

    /// Embedded bundle, or the directory when one is given.
    pub fn from_option(dir: Option<&Path>) -> Result<BundleFiles, PolicyError> {
        match dir {
            Some(d) => BundleFiles::read_dir(d),
            None => Ok(BundleFiles::embedded()),
        }
    }

    /// Hex SHA-256 over every file's path and contents, length-prefixed so that no two
    /// different bundles share a revision.
    pub fn revision(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            h.update((f.path.len() as u64).to_be_bytes());
            h.update(f.path.as_bytes());
            h.update((f.text.len() as u64).to_be_bytes());
            h.update(f.text.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The bundle's data documents, as JSON.
    pub fn data(&self) -> Vec<serde_json::Value> {
        self.files
            .iter()
            .filter(|f| f.is_data())
            .filter_map(|f| serde_json::from_str(&f.text).ok())
            .collect()
    }

    /// Build a regorus engine from the bundle's files. `with_tests` adds `*_test.rego`.
    pub fn engine(&self, with_tests: bool) -> Result<regorus::Engine, PolicyError> {
        let mut engine = regorus::Engine::new();
        if with_tests {
            add_test_builtins(
                &mut engine,
                crate::facts::ParamRoles::from_data(&self.data()),
            )?;
        }
        for f in &self.files {
            if f.is_rego() && (with_tests || !f.is_test()) {
                engine
                    .add_policy(f.path.clone(), f.text.clone())
                    .map_err(|e| PolicyError::Compile(format!("{}: {e:#}", f.path)))?;
            } else if f.is_data() {
                let value = regorus::Value::from_json_str(&f.text)
                    .map_err(|e| PolicyError::Compile(format!("{}: invalid JSON: {e}", f.path)))?;
                engine
                    .add_data(value)
                    .map_err(|e| PolicyError::Compile(format!("{}: {e:#}", f.path)))?;
            }
        }
        Ok(engine)
    }
}

/// The facts context the `clawgate_facts_for(input)` test builtin states facts in, as
/// documented in `docs/policy-guide.md` ("Testing rules on facts").
pub fn test_facts_context() -> crate::facts::FactsContext {
    crate::facts::FactsContext {
        home: "/home/dev".into(),
        workspace: "/home/dev/project".into(),
        sidecar_paths: vec!["/var/lib/clawgate".into()],
        sidecar_ports: vec![9482],
        limits: crate::facts::Limits::default(),
    }
}

/// `clawgate_facts_for(input)` for policy tests: the facts clawgate's facts stage states for
/// `input.action`, with this bundle's parameter roles and [`test_facts_context`]. Only the
/// test engine has it; serving policies read `input.facts`.
fn add_test_builtins(
    engine: &mut regorus::Engine,
    roles: crate::facts::ParamRoles,
) -> Result<(), PolicyError> {
    engine
        .add_extension(
            "clawgate_facts_for".to_string(),
            1,
            Box::new(move |args: Vec<regorus::Value>| {
                let input = serde_json::to_value(args.first().unwrap_or(&regorus::Value::Null))?;
                // A malformed action (tests of the fail-closed paths) has no facts.
                let facts = match serde_json::from_value::<crate::action::Action>(
                    input.get("action").cloned().unwrap_or_default(),
                ) {
                    Ok(action) => crate::facts::facts_for(&action, &roles, &test_facts_context()),
                    Err(_) => crate::facts::Facts::default(),
                };
                regorus::Value::from_json_str(&serde_json::to_string(&facts)?)
            }),
        )
        .map_err(|e| PolicyError::Compile(format!("cannot add builtin: {e:#}")))
}

fn collect_embedded(dir: &Dir<'static>, out: &mut Vec<BundleFile>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let f = BundleFile {
            path,
            text: String::from_utf8_lossy(file.contents()).into_owned(),
        };
        if f.is_rego() || f.is_data() {
            out.push(f);
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn read_dir_into(root: &Path, dir: &Path, out: &mut Vec<BundleFile>) -> Result<(), PolicyError> {
    let io = |e: std::io::Error, p: &Path| PolicyError::Load(format!("{}: {e}", p.display()));
    for entry in std::fs::read_dir(dir).map_err(|e| io(e, dir))? {
        let entry = entry.map_err(|e| io(e, dir))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type().map_err(|e| io(e, &path))?;
        if ty.is_dir() {
            read_dir_into(root, &path, out)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let candidate = BundleFile {
            path: rel,
            text: String::new(),
        };
        if candidate.is_rego() || candidate.is_data() {
            let text = std::fs::read_to_string(&path).map_err(|e| io(e, &path))?;
            out.push(BundleFile { text, ..candidate });
        }
    }
    Ok(())
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A compiled, validated bundle, ready to evaluate.
pub struct Bundle {
    pub revision: String,
    pub source: BundleSource,
    /// Distinguishes bundles in per-thread engine caches.
    pub(super) generation: u64,
    /// Prepared engine with the time budget set; workers clone it once per bundle, then
    /// reuse their clone.
    pub(super) template: Mutex<regorus::Engine>,
    pub file_count: usize,
    pub test_file_count: usize,
    /// What of the input the bundle reads; `None` when its decisions must not be cached.
    pub projection: Option<super::cache::InputProjection>,
    /// Tool groups from the bundle's data, for identity scopes.
    pub tool_catalog: crate::gate::scope::ToolCatalog,
    /// Which tool parameters are commands, paths and URLs, for the facts stage.
    pub param_roles: crate::facts::ParamRoles,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("revision", &self.revision)
            .field("source", &self.source)
            .finish()
    }
}

impl Bundle {
    /// Compile the bundle; reject it if it does not compile, if its tests do not load, or if
    /// it does not define the entrypoint.
    pub fn compile(files: &BundleFiles, budget: Duration) -> Result<Bundle, PolicyError> {
        let mut engine = files.engine(false)?;
        // Loading may compile regexes and other caches on first use: give it a generous
        // budget, so a slow first evaluation is absorbed here rather than by a request.
        engine.set_execution_timer_config(timer(LOAD_BUDGET.max(budget)));
        // Evaluating the entrypoint once prepares the engine (so clones skip that work) and
        // proves the rule exists: regorus errors on a rule path that no module declares.
        engine.set_input(regorus::Value::new_object());
        engine
            .eval_rule(ENTRYPOINT.to_string())
            .map_err(|e| PolicyError::Compile(format!("{ENTRYPOINT} is not usable: {e:#}")))?;
        // Warm up with one input of each kind, so that the regexes the bundle uses are compiled
        // (and cached by regorus) before the first real request, not within its time budget.
        for input in WARM_UP_INPUTS {
            if let Ok(value) = regorus::Value::from_json_str(input) {
                engine.set_input(value);
                let _ = engine.eval_rule(ENTRYPOINT.to_string());
            }
        }
        engine.set_execution_timer_config(timer(budget));
        let test_file_count = files.files.iter().filter(|f| f.is_test()).count();
        if test_file_count > 0 {
            let mut with_tests = files.engine(true)?;
            with_tests.set_execution_timer_config(timer(LOAD_BUDGET.max(budget)));
            with_tests.set_input(regorus::Value::new_object());
            with_tests
                .eval_rule(ENTRYPOINT.to_string())
                .map_err(|e| PolicyError::Compile(format!("policy tests do not load: {e:#}")))?;
        }
        let data = files.data();

        Ok(Bundle {
            tool_catalog: crate::gate::scope::ToolCatalog::from_data(&data),
            param_roles: crate::facts::ParamRoles::from_data(&data),
            revision: files.revision(),
            source: files.source.clone(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            template: Mutex::new(engine),
            file_count: files.files.len(),
            test_file_count,
            projection: super::cache::InputProjection::scan(
                files
                    .files
                    .iter()
                    .filter(|f| f.is_rego() && !f.is_test())
                    .map(|f| f.text.as_str()),
            ),
        })
    }
}
