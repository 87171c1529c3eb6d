//! brush's shell parser, run in a child process with a memory ceiling and a deadline.
//!
//! The facts stage parses text an agent (or a prompt injection) wrote. brush's tokenizer has
//! inputs it never finishes on, allocating until the machine runs out of memory (84 bytes of
//! here-document inside `$(…)` took 2.9 GB; found by libFuzzer), and deep recursion can
//! overflow a stack. Lexical guards in [`super::shell`] refuse the shapes found so far, but a
//! guard per finding is not a bound. The clawgate binary therefore parses in worker
//! processes of its own executable (`clawgate parse-worker`, one per parsing thread, started
//! on first use): a worker limits its address space to [`super::Limits::parse_memory_mib`]
//! and is killed past [`super::Limits::parse_timeout_ms`]. A worker that dies or is killed
//! takes only that text with it: the script is stated with a `parse_error` (so policy holds
//! it, like any text that does not parse) and the next parse starts a fresh worker.
//!
//! Without [`enable`] (library users, unit tests, libFuzzer, which must see the parser's own
//! failures) parses run in the calling thread.
//!
//! Wire format, both ways over the worker's stdin/stdout: a request is a little-endian `u32`
//! length and the UTF-8 text; an answer is one status byte (0: the program as JSON, 1: brush's
//! error message) and a little-endian `u32` length before its payload.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use brush_parser::ast;

use super::shell::{parser_options, unpanicked};

/// The argument that makes the clawgate binary a parser worker.
pub const WORKER_COMMAND: &str = "parse-worker";

/// The largest request a worker reads (scripts are bounded far below this by
/// [`super::Limits::max_script_bytes`]).
const MAX_REQUEST: usize = 16 << 20;
/// The largest answer the sidecar reads: a parsed program's JSON is a few hundred bytes per
/// word, so this is far above what a bounded script yields, and it bounds what a worker gone
/// wrong can make the sidecar allocate.
const MAX_ANSWER: usize = 64 << 20;

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Parse in worker processes started as `program parse-worker --memory-mib N` from now on.
/// The clawgate binary calls this at start with its own executable (`/proc/self/exe`, so an
/// upgrade on disk does not change what runs). The first call wins.
pub fn enable(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// What one parse may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub memory_mib: u64,
    pub timeout: Duration,
}

/// Parse `text` as a shell program: in a worker when enabled, else in this thread. `Err` is
/// the reason it was not parsed, worded for the `parse_error` fact.
pub fn parse(text: &str, budget: Budget) -> Result<ast::Program, String> {
    match PROGRAM.get() {
        Some(program) => parse_in_worker(program, text, budget),
        None => parse_here(text),
    }
}

/// Parse in this thread's worker started from `program`, starting it when there is none.
fn parse_in_worker(program: &Path, text: &str, budget: Budget) -> Result<ast::Program, String> {
    WORKER.with_borrow_mut(|slot| {
        if slot
            .as_ref()
            .is_none_or(|w| w.memory_mib != budget.memory_mib || w.program != program)
        {
            *slot = None;
            match Worker::start(program, budget.memory_mib) {
                Ok(worker) => *slot = Some(worker),
                Err(e) => {
                    tracing::error!(error = %e, program = %program.display(), "the shell parser worker did not start");
                    return Err(format!(
                        "the shell parser could not be started ({e}); not parsed"
                    ));
                }
            }
        }
        let Some(worker) = slot.as_mut() else {
            return Err("the shell parser could not be started; not parsed".to_string());
        };
        match worker.parse(text, budget.timeout) {
            Ok(answer) => answer,
            Err(failure) => {
                // The worker is gone or wedged: kill it, and say why this text was not parsed.
                let reason = slot
                    .take()
                    .map(|w| w.stop(failure, budget))
                    .unwrap_or_default();
                tracing::warn!(bytes = text.len(), %reason, "the shell parser worker failed on a script");
                Err(reason)
            }
        }
    })
}

/// brush's parse in this thread; a panic is a parse failure.
fn parse_here(text: &str) -> Result<ast::Program, String> {
    unpanicked(|| brush_parser::Parser::new(text.as_bytes(), &parser_options()).parse_program())
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Why a worker gave no answer.
#[derive(Debug)]
enum Failure {
    TimedOut,
    Ended,
    Io(std::io::Error),
    BadAnswer(String),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    program: PathBuf,
    memory_mib: u64,
}

impl Worker {
    fn start(program: &Path, memory_mib: u64) -> std::io::Result<Worker> {
        let mut child = Command::new(program)
            .arg(WORKER_COMMAND)
            .arg("--memory-mib")
            .arg(memory_mib.to_string())
            // The worker needs nothing from the sidecar's environment (which may hold secrets).
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the worker's pipes were not set up"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout,
            program: program.to_path_buf(),
            memory_mib,
        })
    }

    fn parse(
        &mut self,
        text: &str,
        timeout: Duration,
    ) -> Result<Result<ast::Program, String>, Failure> {
        let deadline = Instant::now() + timeout;
        let len = u32::try_from(text.len())
            .map_err(|_| Failure::BadAnswer("the text is too long".into()))?;
        let mut request = Vec::with_capacity(4 + text.len());
        request.extend_from_slice(&len.to_le_bytes());
        request.extend_from_slice(text.as_bytes());
        // A worker that is gone shows as a broken pipe here: say how it ended instead.
        let sent = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::Ended,
            _ => Failure::Io(e),
        };
        self.stdin.write_all(&request).map_err(sent)?;
        self.stdin.flush().map_err(sent)?;

        let mut head = [0u8; 5];
        read_until(&mut self.stdout, &mut head, deadline)?;
        let [status, l0, l1, l2, l3] = head;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if len > MAX_ANSWER {
            return Err(Failure::BadAnswer(format!("an answer of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        read_until(&mut self.stdout, &mut payload, deadline)?;
        match status {
            0 => serde_json::from_slice(&payload)
                .map(Ok)
                .map_err(|e| Failure::BadAnswer(e.to_string())),
            1 => Ok(Err(String::from_utf8_lossy(&payload).into_owned())),
            other => Err(Failure::BadAnswer(format!("status {other}"))),
        }
    }

    /// Kill the worker and word why the text was not parsed.
    fn stop(mut self, failure: Failure, budget: Budget) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        match failure {
            Failure::TimedOut => format!(
                "the shell parser took longer than {} ms on this text; not parsed",
                budget.timeout.as_millis()
            ),
            Failure::Ended => {
                use std::os::unix::process::ExitStatusExt;
                let how = match status.and_then(|s| s.signal()) {
                    Some(libc::SIGABRT) => {
                        format!("ran out of its {} MiB memory budget", budget.memory_mib)
                    }
                    Some(libc::SIGSEGV) | Some(libc::SIGBUS) => "ran out of stack".to_string(),
                    Some(signal) => format!("was ended by signal {signal}"),
                    None => "exited".to_string(),
                };
                format!("the shell parser {how} on this text; not parsed")
            }
            Failure::Io(e) => format!("the shell parser's worker failed ({e}); not parsed"),
            Failure::BadAnswer(e) => {
                format!("the shell parser's worker answered badly ({e}); not parsed")
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fill `buf` from the worker before `deadline`.
fn read_until(out: &mut ChildStdout, buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut);
        }
        let mut pollfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for a descriptor this worker owns, for the call only.
        let ready = unsafe { libc::poll(&mut pollfd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Failure::Io(e));
        }
        if ready == 0 {
            continue;
        }
        match out.read(&mut buf[filled..]) {
            Ok(0) => return Err(Failure::Ended),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(())
}

/// The worker's side (`clawgate parse-worker`): limit this process's memory, then answer
/// parse requests on stdin until it closes.
pub fn serve(memory_mib: u64) -> std::io::Result<()> {
    limit_self(memory_mib)?;
    // A panic is answered as a parse error; its message would only go to a closed stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_REQUEST {
            return Err(std::io::Error::other(format!("a request of {len} bytes")));
        }
        let mut text = vec![0u8; len];
        input.read_exact(&mut text)?;
        let (status, payload) = match std::str::from_utf8(&text) {
            Err(_) => (1u8, b"the text is not UTF-8".to_vec()),
            Ok(text) => match parse_here(text) {
                Ok(program) => match serde_json::to_vec(&program) {
                    Ok(json) => (0u8, json),
                    Err(e) => (1u8, e.to_string().into_bytes()),
                },
                Err(e) => (1u8, e.into_bytes()),
            },
        };
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        output.write_all(&[status])?;
        output.write_all(&len.to_le_bytes())?;
        output.write_all(&payload)?;
        output.flush()?;
    }
}

/// Cap this process's address space, write no core file, and die with the thread that
/// started it.
fn limit_self(memory_mib: u64) -> std::io::Result<()> {
    let bytes = memory_mib.saturating_mul(1 << 20);
    let limits = [
        (libc::RLIMIT_AS, bytes as libc::rlim_t),
        (libc::RLIMIT_CORE, 0),
    ];
    for (resource, value) in limits {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads one valid rlimit for the call only.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and nothing else.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const BUDGET: Budget = Budget {
        memory_mib: 256,
        timeout: Duration::from_millis(300),
    };

    /// A stand-in worker program: a shell script (the real worker is the clawgate binary,
    /// exercised by the integration tests; these try the sidecar's side against workers
    /// that go wrong).
    fn program(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn parsed_programs_cross_the_pipe_unchanged() {
        for text in [
            "ls -la && git status",
            "for f in $(git ls-files '*.py'); do grep -n 'TODO|FIXME' \"$f\" >> /tmp/o; done",
            "cat <<EOF | sh\nrm -rf ~\nEOF\n",
            "x=$((1 << 2)); echo ${x:-`id`} 2>&1 &",
        ] {
            let program = parse_here(text).unwrap();
            let json = serde_json::to_vec(&program).unwrap();
            let back: ast::Program = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, program, "{text}");
        }
    }

    #[test]
    fn a_worker_that_never_answers_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let silent = program(dir.path(), "silent", "exec sleep 30");
        let started = Instant::now();
        let err = parse_in_worker(&silent, "ls", BUDGET).unwrap_err();
        assert!(err.contains("took longer than 300 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The next parse gets a fresh worker, and is bounded the same way.
        let err = parse_in_worker(&silent, "ls", BUDGET).unwrap_err();
        assert!(err.contains("took longer than"), "{err}");
        WORKER.with_borrow(|slot| assert!(slot.is_none(), "the wedged worker was kept"));
    }

    #[test]
    fn a_worker_that_dies_or_talks_nonsense_fails_only_that_text() {
        let dir = tempfile::tempdir().unwrap();
        let dies = program(dir.path(), "dies", "head -c 6 >/dev/null; kill -ABRT $$");
        let err = parse_in_worker(&dies, "ls", BUDGET).unwrap_err();
        assert!(
            err.contains("ran out of its 256 MiB memory budget"),
            "{err}"
        );
        let exits = program(dir.path(), "exits", "head -c 6 >/dev/null; exit 3");
        let err = parse_in_worker(&exits, "ls", BUDGET).unwrap_err();
        assert!(err.contains("exited"), "{err}");
        // A length past the bound is refused before anything is allocated for it.
        let huge = program(dir.path(), "huge", "printf 'xxxxx'; exec sleep 30");
        let err = parse_in_worker(&huge, "ls", BUDGET).unwrap_err();
        assert!(err.contains("answered badly"), "{err}");
        let garbled = program(
            dir.path(),
            "garbled",
            "printf '\\000\\002\\000\\000\\000{]'; exec sleep 30",
        );
        let err = parse_in_worker(&garbled, "ls", BUDGET).unwrap_err();
        assert!(err.contains("answered badly"), "{err}");
        let missing = dir.path().join("missing");
        let err = parse_in_worker(&missing, "ls", BUDGET).unwrap_err();
        assert!(err.contains("could not be started"), "{err}");
    }
}
