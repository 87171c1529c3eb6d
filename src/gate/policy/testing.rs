//! `clawgate policy test`: runs every `test_*` rule of a bundle, as `opa test` would.
//! regorus has no test runner of its own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{BundleFiles, PolicyError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    Pass,
    /// The rule evaluated to something other than `true` (shown).
    Fail(String),
    /// Evaluation raised an error.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct TestResult {
    /// Full rule path, e.g. `data.clawgate.exec_test.test_rm_rf_denied`.
    pub name: String,
    pub file: String,
    pub outcome: TestOutcome,
    pub duration: Duration,
}

/// Lines of one policy file that no test evaluated.
#[derive(Debug, Clone)]
pub struct UncoveredFile {
    pub path: String,
    pub covered: usize,
    /// (line number, source text)
    pub uncovered: Vec<(u32, String)>,
}

#[derive(Debug, Default)]
pub struct TestReport {
    pub results: Vec<TestResult>,
    /// Present when coverage was requested; policy files only, test files excluded.
    pub coverage: Option<Vec<UncoveredFile>>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == TestOutcome::Pass)
            .count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// The test rules declared in one test file: its package and each `test_*` rule name.
fn declared_tests(text: &str) -> Option<(String, BTreeSet<String>)> {
    let mut package = None;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("package ") {
            package = Some(rest.trim().to_string());
        } else if line.starts_with("test_") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    package.map(|p| (p, names))
}

/// Run every test of the bundle. Errors only if the bundle itself does not load.
pub fn run(files: &BundleFiles, coverage: bool) -> Result<TestReport, PolicyError> {
    let mut engine = files.engine(true)?;
    if coverage {
        engine.set_enable_coverage(true);
    }
    let mut report = TestReport::default();
    for file in files.files.iter().filter(|f| f.is_test()) {
        let Some((package, names)) = declared_tests(&file.text) else {
            continue;
        };
        for name in names {
            let rule = format!("data.{package}.{name}");
            let start = Instant::now();
            let outcome = match engine.eval_rule(rule.clone()) {
                Ok(regorus::Value::Bool(true)) => TestOutcome::Pass,
                Ok(regorus::Value::Undefined) => TestOutcome::Fail("undefined".into()),
                Ok(v) => TestOutcome::Fail(v.to_json_str().unwrap_or_else(|_| format!("{v:?}"))),
                Err(e) => TestOutcome::Error(format!("{e:#}")),
            };
            report.results.push(TestResult {
                name: rule,
                file: file.path.clone(),
                outcome,
                duration: start.elapsed(),
            });
        }
    }
    if coverage {
        let cov = engine
            .get_coverage_report()
            .map_err(|e| PolicyError::Compile(format!("coverage: {e:#}")))?;
        report.coverage = Some(
            cov.files
                .into_iter()
                .filter(|f| !f.path.ends_with("_test.rego"))
                .map(|f| {
                    let lines: Vec<&str> = f.code.split('\n').collect();
                    UncoveredFile {
                        covered: f.covered.len(),
                        uncovered: f
                            .not_covered
                            .iter()
                            .map(|n| {
                                let text = lines
                                    .get((*n as usize).saturating_sub(1))
                                    .copied()
                                    .unwrap_or_default();
                                (*n, text.to_string())
                            })
                            .collect(),
                        path: f.path,
                    }
                })
                .collect(),
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::policy::bundle::{BundleFile, BundleSource};

    fn bundle(files: &[(&str, &str)]) -> BundleFiles {
        BundleFiles {
            source: BundleSource::Embedded,
            files: files
                .iter()
                .map(|(p, t)| BundleFile {
                    path: p.to_string(),
                    text: t.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn passing_failing_and_erroring_tests_are_told_apart() {
        let files = bundle(&[
            (
                "p.rego",
                "package clawgate\ndecision := {\"effect\": \"allow\", \"risk\": \"low\"} if input.ok\n",
            ),
            (
                "p_test.rego",
                "package clawgate.p_test\nimport data.clawgate\n\
                 test_ok if clawgate.decision.effect == \"allow\" with input as {\"ok\": true}\n\
                 test_wrong if clawgate.decision.effect == \"deny\" with input as {\"ok\": true}\n\
                 test_undefined if clawgate.decision with input as {}\n",
            ),
        ]);
        let report = run(&files, true).unwrap();
        let by_name = |n: &str| {
            report
                .results
                .iter()
                .find(|r| r.name.ends_with(n))
                .unwrap()
                .outcome
                .clone()
        };
        assert_eq!(by_name("test_ok"), TestOutcome::Pass);
        assert!(matches!(by_name("test_wrong"), TestOutcome::Fail(_)));
        assert!(matches!(by_name("test_undefined"), TestOutcome::Fail(_)));
        assert_eq!((report.passed(), report.failed()), (1, 2));
        let cov = report.coverage.unwrap();
        assert_eq!(cov.len(), 1);
        assert_eq!(cov[0].path, "p.rego");
    }
}
