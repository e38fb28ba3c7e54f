//! A real Kafka-protocol broker for tests: Tansu (crates.io), started per test on a free
//! loopback port, the same command line as `scripts/tansu.sh start`. Apache Kafka cannot be
//! downloaded on these machines.
//!
//! A broker test never passes silently without a broker: when no `tansu` binary is found it
//! fails and says how to install one, unless `NHID_SKIP_BROKER_TESTS=1` (which CI never sets)
//! skips it explicitly.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    /// Tansu resolves a sqlite path against its working directory.
    dir: PathBuf,
    pub brokers: String,
}

/// The tansu binary: `$NHID_TANSU`, else `tansu` on PATH or in `~/.cargo/bin`. Public for
/// `benches/kafka.rs`, which includes this file and skips Tansu when there is none.
pub fn tansu() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NHID_TANSU") {
        return Some(p.into());
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(home)
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
}

impl Broker {
    /// A broker with in-memory storage, or `None` when broker tests are explicitly skipped.
    pub fn start() -> Option<Broker> {
        Broker::start_with("memory://tansu/".into(), std::env::temp_dir())
    }

    /// A broker whose data survives restarts (sqlite in a temporary directory).
    pub fn start_persistent(dir: &std::path::Path) -> Option<Broker> {
        Broker::start_with("sqlite://tansu.db".into(), dir.to_path_buf())
    }

    fn start_with(storage: String, dir: PathBuf) -> Option<Broker> {
        if std::env::var("NHID_SKIP_BROKER_TESTS").as_deref() == Ok("1") {
            eprintln!("NHID_SKIP_BROKER_TESTS=1: skipping a test that needs the real broker");
            return None;
        }
        if tansu().is_none() {
            panic!(
                "this test needs the Tansu broker and none was found (NHID_TANSU, PATH, ~/.cargo/bin).\n\
                 Install it once per machine: scripts/tansu.sh install\n\
                 (cargo install tansu --version 0.6.0 --features dynostore,libsql --locked), or skip the\n\
                 broker tests explicitly with NHID_SKIP_BROKER_TESTS=1."
            );
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut b = Broker { child: None, port, storage, dir, brokers: format!("127.0.0.1:{port}") };
        b.spawn();
        Some(b)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu().unwrap())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on port {} within 30 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (SIGKILL: no clean shutdown) and starts it again on the same port
    /// and storage after `down`.
    pub fn restart(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The broker's process id, while it runs (the benchmark reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu().unwrap())
            .args(["topic", "create", name, "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {name} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
