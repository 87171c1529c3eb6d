//! Network namespaces for the transparent-mode tests: an "upstream" namespace and an "agent"
//! namespace joined by a veth pair, created by the test for itself and deleted when dropped.
//! Nothing touches the host's own network. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): without
//! it the test fails with a message that says so, it is never skipped.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The upstream's addresses: `UP` is reachable by policy, `UP_BLOCKED` is not, `UP_OTHER` is
/// reachable but named by nothing.
pub const UP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const AGENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const UP_BLOCKED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
pub const UP_OTHER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 4);
pub const UP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
pub const AGENT6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
pub const UP6_BLOCKED: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 3);

/// Two namespaces and the veth between them; deleted on drop.
pub struct NetLab {
    pub up: String,
    pub agent: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetLab {
    /// Create the namespaces, or panic saying why (not root, no `ip`, no netns support).
    pub fn new() -> NetLab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id());
        let lab = NetLab {
            up: format!("cgup{tag}"),
            agent: format!("cgag{tag}"),
        };
        if let Err(e) = lab.build(&tag) {
            panic!(
                "the transparent-mode tests need network namespaces (run as root with `ip` from iproute2 and iptables installed; \
                 scripts/setup-tools.sh netns installs them): {e}"
            );
        }
        lab
    }

    fn build(&self, tag: &str) -> Result<(), String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        run(&["ip", "netns", "add", &self.up])?;
        run(&["ip", "netns", "add", &self.agent])?;
        let (va, vb) = (format!("cgu{tag}"), format!("cga{tag}"));
        run(&[
            "ip",
            "link",
            "add",
            &va,
            "netns",
            &self.up,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &self.agent,
        ])?;
        let up = |args: &[&str]| {
            let mut v = vec!["ip", "-n", self.up.as_str()];
            v.extend_from_slice(args);
            run(&v)
        };
        let ag = |args: &[&str]| {
            let mut v = vec!["ip", "-n", self.agent.as_str()];
            v.extend_from_slice(args);
            run(&v)
        };
        for a in [UP, UP_BLOCKED, UP_OTHER] {
            up(&["addr", "add", &format!("{a}/24"), "dev", &va])?;
        }
        for a in [UP6, UP6_BLOCKED] {
            up(&["addr", "add", &format!("{a}/64"), "dev", &va, "nodad"])?;
        }
        ag(&["addr", "add", &format!("{AGENT}/24"), "dev", &vb])?;
        ag(&["addr", "add", &format!("{AGENT6}/64"), "dev", &vb, "nodad"])?;
        up(&["link", "set", "lo", "up"])?;
        ag(&["link", "set", "lo", "up"])?;
        up(&["link", "set", &va, "up"])?;
        ag(&["link", "set", &vb, "up"])?;
        Ok(())
    }

    /// A command run inside `ns`, as `uid` (and gid) when given, with no supplementary groups.
    pub fn command(&self, ns: &str, uid: Option<u32>, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        if let Some(uid) = uid {
            c.args([
                "setpriv",
                "--reuid",
                &uid.to_string(),
                "--regid",
                &uid.to_string(),
                "--clear-groups",
            ]);
        }
        c.arg(program);
        c
    }

    /// Run `f` on a thread that has entered namespace `ns` and, with `uid`, creates sockets
    /// owned by that user (its filesystem uid: the owner iptables' `owner` match reads).
    /// Sockets made there stay in `ns` wherever they are used afterwards.
    pub fn within<T: Send + 'static>(
        &self,
        ns: &str,
        uid: Option<u32>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("namespace file");
            // SAFETY: setns and setfsuid act on this thread only; the fd is valid.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            );
            if let Some(uid) = uid {
                unsafe { libc::setfsuid(uid) };
            }
            f()
        })
        .join()
        .expect("namespace thread")
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the pair.
        for ns in [&self.agent, &self.up] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}
