//! DataBlocks in an S3-compatible object store (`--blocks s3://bucket/prefix`), against a
//! real S3 server: moto's server mode, installed by `scripts/test-deps.sh` and started here
//! on a free loopback port. Both passes of the suite run these (SQLite and PostgreSQL
//! environments).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine_support::Workspace;
use crate::support::Coreflow;

/// Where `scripts/test-deps.sh` installs moto's server.
const MOTO: &str = "/tmp/coreflow-test-venv/bin/moto_server";
const BUCKET: &str = "flows";

/// A moto S3 server on a free loopback port, stopped on drop.
struct S3 {
    child: Child,
    port: u16,
}

impl S3 {
    fn start() -> S3 {
        assert!(
            Path::new(MOTO).exists(),
            "{MOTO} is missing: run scripts/test-deps.sh (it installs moto[server] from PyPI)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let s3 = S3 { child, port };
        // Ready when it answers; it takes a second or two to import.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, body) = s3.http("PUT", &format!("/{BUCKET}"), b"");
        assert_eq!(status, 200, "cannot create the bucket: {body}");
        s3
    }

    /// One plain HTTP request (moto does not check signatures); status and body.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Content-Type: application/octet-stream\r\n\
             Connection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send");
        stream.write_all(body).expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("receive");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }

    /// The keys in the bucket under `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.http(
            "GET",
            &format!("/{BUCKET}?list-type=2&prefix={prefix}"),
            b"",
        );
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// A `coreflow` invocation of `ws` keeping blocks in this server under `prefix`, as
    /// host `host` (its own state folder, so its own cache of a PostgreSQL environment).
    fn coreflow(&self, ws: &Workspace, prefix: &str, host: &str) -> Coreflow {
        ws.coreflow()
            .env("COREFLOW_BLOCKS", format!("s3://{BUCKET}/{prefix}"))
            .env("XDG_STATE_HOME", ws.path().join(host))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port))
            .env("AWS_ALLOW_HTTP", "true")
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `blocks-cache` folder under `dir`: the caches of the object store.
fn caches(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry
                .file_type()
                .is_ok_and(|t| t.is_dir() && !t.is_symlink())
            {
                if entry.file_name() == "blocks-cache" {
                    found.push(path);
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

/// Forgets what this host cached, as another host would see the store.
fn drop_caches(dir: &Path) {
    for cache in caches(dir) {
        make_writable(&cache);
        std::fs::remove_dir_all(&cache).expect("the cache can be removed");
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            make_writable(&path);
        }
    }
}

const WORKFLOW: &str = "\
name: wf
jobs:
  produce:
    steps:
      - run: |
          mkdir -p out/sub
          printf 'id,amount\\n1,5\\n' > out/orders.csv
          printf 'nested' > out/sub/note.txt
          printf 'hello' > greeting.txt
    datablocks:
      folder: { path: out }
      greeting: { path: greeting.txt }
  consume:
    needs: [produce]
    inputs: { folder: produce.folder, greeting: produce.greeting }
    steps:
      - run: cat \"$COREFLOW_INPUT_FOLDER/orders.csv\" \"$COREFLOW_INPUT_FOLDER/sub/note.txt\" \"$COREFLOW_INPUT_GREETING\" > seen.txt
";

#[test]
fn blocks_published_to_s3_are_read_back_by_a_host_that_never_saw_them() {
    let s3 = S3::start();
    let ws = Workspace::with_workflow(WORKFLOW);
    s3.coreflow(&ws, "env-a", "host-a")
        .args(["run", "wf.yaml"])
        .succeeds();
    assert_eq!(ws.read("seen.txt"), "id,amount\n1,5\nnestedhello");
    // In the bucket: two file objects of the folder, the greeting, and the folder listing,
    // under the prefix.
    let keys = s3.keys("env-a/");
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("env-a/objects/"))
            .count(),
        3,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("env-a/trees/"))
            .count(),
        1,
        "{keys:?}"
    );
    // Another host, with nothing cached: `blocks get` and a consuming job download.
    drop_caches(&ws.path());
    s3.coreflow(&ws, "env-a", "host-b")
        .args(["blocks", "get", "folder", "copy"])
        .succeeds();
    assert_eq!(ws.read("copy/orders.csv"), "id,amount\n1,5\n");
    assert_eq!(ws.read("copy/sub/note.txt"), "nested");
    drop_caches(&ws.path());
    ws.file(
        "reader.yaml",
        "\
name: reader
params:
  src: { type: datablock, default: folder }
jobs:
  read:
    steps:
      - run: cat \"$COREFLOW_INPUT_SRC/sub/note.txt\" > read.txt
",
    );
    s3.coreflow(&ws, "env-a", "host-b")
        .args(["run", "reader.yaml"])
        .succeeds();
    assert_eq!(ws.read("read.txt"), "nested");
    // A collection keeps content younger than its grace period in the bucket: another host
    // may have uploaded it for a version it has not registered yet.
    s3.coreflow(&ws, "env-a", "host-b")
        .args(["blocks", "gc", "--keep", "1"])
        .succeeds();
    assert_eq!(s3.keys("env-a/").len(), keys.len());
}

#[test]
fn content_in_the_bucket_that_does_not_match_its_hash_is_refused() {
    let s3 = S3::start();
    let ws = Workspace::with_workflow(WORKFLOW);
    // Something else already holds other bytes under the name of `hello`'s hash: publishing
    // finds the name taken (content is never uploaded twice), and a host that downloads it
    // must notice.
    let hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let key = format!("/{BUCKET}/env-b/objects/{}/{hash}", &hash[..2]);
    let (status, body) = s3.http("PUT", &key, b"tampered");
    assert_eq!(status, 200, "{body}");
    s3.coreflow(&ws, "env-b", "host-a")
        .args(["run", "wf.yaml"])
        .succeeds();
    drop_caches(&ws.path());
    let out = s3
        .coreflow(&ws, "env-b", "host-b")
        .args(["blocks", "get", "greeting", "g.txt"])
        .fails(3);
    assert!(
        out.stderr().contains(&format!(
            "env-b/objects/2c/{hash}` holds content whose hash is"
        )),
        "{}",
        out.stderr()
    );
    assert!(
        !ws.exists("g.txt"),
        "nothing is written from corrupt content"
    );
}

#[test]
fn an_unsupported_blocks_url_is_a_usage_error() {
    let ws = Workspace::with_workflow(WORKFLOW);
    let out = ws
        .coreflow()
        .env("COREFLOW_BLOCKS", "gs://bucket/x")
        .args(["blocks", "list"])
        .fails(2);
    assert!(
        out.stderr().contains("`gs://` is not supported"),
        "{}",
        out.stderr()
    );
}

#[test]
fn env_copy_moves_block_content_into_s3_and_out_again() {
    let s3 = S3::start();
    let ws = Workspace::with_workflow(WORKFLOW);
    // Content in the environment's folder (or, on the PostgreSQL pass, its shared folder).
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let copy = ws.path().join("copy");
    s3.coreflow(&ws, "unused", "host-a")
        .env_remove("COREFLOW_BLOCKS")
        .env("COREFLOW_BLOCKS", crate::support::shared_blocks(&ws.path()))
        .args(["env", "copy", "--to"])
        .arg(&copy)
        .args(["--to-blocks", &format!("s3://{BUCKET}/env-c")])
        .succeeds();
    assert_eq!(s3.keys("env-c/").len(), 4, "three files and a listing");
    // And back out of it, into another folder, from a host that never saw the content.
    drop_caches(&ws.path());
    let back = ws.path().join("back");
    s3.coreflow(&ws, "env-c", "host-b")
        .env("COREFLOW_ENV", &copy)
        .args(["env", "copy", "--to"])
        .arg(&back)
        .succeeds();
    ws.coreflow()
        .env("COREFLOW_ENV", &back)
        .env_remove("COREFLOW_BLOCKS")
        .args(["blocks", "get", "folder", "out-again"])
        .succeeds();
    assert_eq!(ws.read("out-again/sub/note.txt"), "nested");
}
