//! Throwaway S3 buckets for tests and benchmarks, on a local S3-compatible server (moto's S3
//! behind `scratch/s3_server.py`, which also injects failures) that one process starts once and
//! that exits with it. The server runs from the Python environment at [`venv`], installed there
//! on first use; a server that cannot be started is an error, never a skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use meshwork_core::descriptor::S3Location;

use crate::{ProductStore, Result, StorageError};

/// The access key scratch buckets are used with (the server accepts any).
pub const ACCESS_KEY_ID: &str = "meshwork-test";
/// The secret key scratch buckets are used with.
pub const SECRET_ACCESS_KEY: &str = "meshwork-test-secret";
/// The region scratch buckets live in.
pub const REGION: &str = "us-east-1";
/// The environment a `meshwork` process needs to reach scratch buckets (their credentials).
pub const CREDENTIALS_ENV: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)];
/// The moto release the server runs.
const MOTO: &str = "moto[server]==5.*";
const SERVER_SCRIPT: &str = include_str!("../scratch/s3_server.py");

/// The Python environment the server runs from: `target/py-venv` of the workspace (the one
/// `.ci/run` also uses), or `MESHWORK_TEST_VENV`.
pub fn venv() -> PathBuf {
    match std::env::var_os("MESHWORK_TEST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/py-venv")),
    }
}

/// The running server: its port, and the child whose stdin keeps it alive.
struct Server {
    port: u16,
    _child: Mutex<Child>,
}

fn failed(message: String) -> StorageError {
    StorageError::ObjectStore { location: "the scratch S3 server".into(), message }
}

fn server() -> Result<&'static Server> {
    static SERVER: OnceLock<std::result::Result<Server, String>> = OnceLock::new();
    SERVER.get_or_init(start).as_ref().map_err(|e| failed(e.clone()))
}

/// Installs moto into the venv when it is missing.
fn install() -> std::result::Result<PathBuf, String> {
    python_with(MOTO, "moto.server, werkzeug").map_err(|e| format!("{e}; the tests need moto from PyPI for their S3 server"))
}

/// The Python of the test environment at [`venv`], with `requirement` (a pip requirement)
/// installed unless `imports` (a comma-separated module list) already imports. Several test
/// binaries may start at once: a file lock makes one install and the others wait. Tests that
/// need a Python package fail, never skip, when it cannot be installed.
pub fn python_with(requirement: &str, imports: &str) -> std::result::Result<PathBuf, String> {
    let venv = venv();
    let python = venv.join("bin/python");
    let has = |python: &PathBuf| Command::new(python).args(["-c", &format!("import {imports}")]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if python.exists() && has(&python) {
        return Ok(python);
    }
    std::fs::create_dir_all(venv.parent().unwrap_or(&venv)).map_err(|e| format!("cannot create `{}`: {e}", venv.display()))?;
    let lock_path = venv.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("cannot create `{}`: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("cannot lock `{}`: {e}", lock_path.display()))?;
    if !(python.exists() && has(&python)) {
        let run = |program: &std::path::Path, args: &[&str]| -> std::result::Result<(), String> {
            let out = Command::new(program).args(args).output().map_err(|e| format!("cannot run `{}`: {e}", program.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("`{} {}` failed: {}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        if !python.exists() {
            run(std::path::Path::new("python3"), &["-m", "venv", &venv.display().to_string()])
                .map_err(|e| format!("{e}; install Python 3 with venv (Debian: `apt-get install python3-venv`)"))?;
        }
        run(&python, &["-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement]).map_err(|e| format!("{e}; `{requirement}` comes from PyPI"))?;
    }
    Ok(python)
}

fn start() -> std::result::Result<Server, String> {
    let python = install()?;
    let mut child = Command::new(&python)
        .args(["-c", SERVER_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the S3 server with `{}`: {e}", python.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("the S3 server did not start: {e}"))?;
    let port = line.trim().parse::<u16>().map_err(|_| format!("the S3 server did not start (it printed `{}`)", line.trim()))?;
    Ok(Server { port, _child: Mutex::new(child) })
}

/// Sends one control request to the server.
fn control(port: u16, path: &str, body: &serde_json::Value) -> Result<()> {
    let body = body.to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| failed(e.to_string()))?;
    write!(stream, "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .map_err(|e| failed(e.to_string()))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| failed(e.to_string()))?;
    if response.starts_with("HTTP/1.1 204") || response.starts_with("HTTP/1.0 204") {
        Ok(())
    } else {
        Err(failed(format!("control request `{path}` answered `{}`", response.lines().next().unwrap_or_default())))
    }
}

/// A bucket of its own on the scratch server.
#[derive(Debug, Clone)]
pub struct ScratchBucket {
    port: u16,
    bucket: String,
}

impl ScratchBucket {
    /// Creates an empty bucket named after `prefix`, the process and a counter, starting the
    /// server if this process has none yet.
    pub fn create(prefix: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server()?;
        let bucket = format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
        control(server.port, "/__meshwork/bucket", &serde_json::json!({ "bucket": bucket }))?;
        Ok(ScratchBucket { port: server.port, bucket })
    }

    /// The server's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The storage location of `prefix` in this bucket, as `mesh.yaml` would name it.
    pub fn location(&self, prefix: &str) -> S3Location {
        S3Location { bucket: self.bucket.clone(), prefix: prefix.to_owned(), endpoint: Some(self.endpoint()), region: Some(REGION.into()), allow_http: Some(true) }
    }

    /// The `storage:` block of a `mesh.yaml` for `prefix` in this bucket.
    pub fn mesh_yaml(&self, prefix: &str) -> String {
        format!("storage:\n  url: s3://{}/{prefix}\n  endpoint: {}\n  region: {REGION}\n  allow_http: true\n", self.bucket, self.endpoint())
    }

    /// A product store rooted at `prefix` in this bucket, with the scratch credentials.
    pub fn store(&self, prefix: &str) -> Result<ProductStore> {
        ProductStore::open_s3_with_credentials(&self.location(prefix), ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    /// Makes the server answer `status` to every `method` request on a key of this bucket
    /// containing `contains`, until [`ScratchBucket::heal`].
    pub fn fail(&self, method: &str, contains: &str, status: u16) -> Result<()> {
        control(self.port, "/__meshwork/fail", &serde_json::json!({ "bucket": self.bucket, "method": method, "contains": contains, "status": status, "times": -1 }))
    }

    /// Drops this bucket's injected failures.
    pub fn heal(&self) -> Result<()> {
        control(self.port, "/__meshwork/fail", &serde_json::json!({ "bucket": self.bucket }))
    }
}
