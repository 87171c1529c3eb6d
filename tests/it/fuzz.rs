//! A short smoke of every fuzz target (issue 15): the seed corpus under `fuzz/corpus/NAME/`,
//! then seeded mutations of it, through the same functions libFuzzer runs
//! (`clawgate::fuzzing`, `scripts/fuzz.sh` for long runs). A panic fails the test and prints
//! the input, to be kept as a seed and a regression test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clawgate::fuzzing::TARGETS;

/// Time each target gets after its seeds.
const SMOKE: Duration = Duration::from_millis(1500);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that change how the parsers above read what follows.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\0",
    b"\n",
    b"\r\n",
    b"%",
    b"%00",
    b"$(",
    b"`",
    b"'",
    b"..",
    b"//",
    b"~",
    b"::",
    b"@",
    b"#",
    b"=",
    b":",
    b"\\u0000",
    b"\xff",
    b"\xc3\x28",
    b"99999999999999999999",
    b"-1",
    b"1e400",
    b"null",
    b"[[[[[[[[",
    b"{{{{{{{{",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(data.len());
                let piece: Vec<u8> = data[at.min(end)..end].to_vec();
                data.splice(at..at, piece.iter().copied().cycle().take(piece.len() * 8));
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            5 => data.truncate(at),
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

#[test]
fn every_fuzz_target_has_a_libfuzzer_entry_and_seeds() {
    let mut entries: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().replace(".rs", ""))
        .collect();
    entries.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(entries, names);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
        assert!(!seeds(name).is_empty(), "{name} has no seeds");
    }
}

/// One input may take this long at most (the facts stage promises bounded time).
/// (A worker filling its memory ceiling takes about 2 s in a debug build.)
const HANG: Duration = Duration::from_secs(10);

#[test]
fn every_fuzz_target_survives_a_seeded_smoke() {
    // As in the binary: brush runs in memory-capped workers, so a mutation that makes it
    // allocate without bound fails that input's parse, not this process.
    crate::common::isolate_shell_parser();
    for (name, target) in TARGETS {
        let corpus = seeds(name);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        // The target runs on a worker thread, one input at a time, so that an input that
        // hangs is reported as such instead of stalling the suite.
        let (to_worker, inputs) = std::sync::mpsc::channel::<Vec<u8>>();
        let (done, results) = std::sync::mpsc::channel::<bool>();
        let target = *target;
        std::thread::spawn(move || {
            for input in inputs {
                let ok = std::panic::catch_unwind(|| target(&input)).is_ok();
                if done.send(ok).is_err() {
                    return;
                }
            }
        });
        let run = |input: Vec<u8>| {
            let shown = String::from_utf8_lossy(&input).into_owned();
            to_worker.send(input).expect("worker alive");
            match results.recv_timeout(HANG) {
                Ok(true) => {}
                Ok(false) => panic!(
                    "fuzz target {name} panicked on {shown:?} (keep it in fuzz/corpus/{name}/ and as a test)"
                ),
                Err(_) => panic!("fuzz target {name} took over {HANG:?} on {shown:?}"),
            }
        };
        for seed in &corpus {
            run(seed.clone());
        }
        let started = Instant::now();
        let mut runs = 0u64;
        while started.elapsed() < SMOKE {
            run(mutate(&mut rng, &corpus));
            runs += 1;
        }
        eprintln!("{name}: {} seeds, {runs} mutated inputs", corpus.len());
    }
}
