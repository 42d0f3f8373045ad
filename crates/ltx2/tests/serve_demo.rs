//! What a user does first: `ltx2 serve --model demo`, then the spec's own clients, unchanged.
//!
//! Runs the real binary (model loading, engine thread, HTTP, MP4 writer) with the in-process demo
//! model and checks the MP4s the spec's bash script and Python client save with ffprobe. The
//! fixtures and helpers are the server crate's, so the two test suites cannot drift apart.

#[path = "../../ltx2-server/tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_spec_mp4, png_bytes, temp_dir, wav_bytes};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ltx2-server/tests/fixtures");

/// `ltx2 serve --model demo` on a free loopback port; killed on drop.
struct DemoServer {
    child: Child,
    url: String,
}

impl DemoServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_ltx2"))
            .args(["serve", "--model", "demo", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ltx2 binary runs");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy();
        server
    }

    /// Polls /health (bounded; the demo model builds in seconds).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let health = format!("{}/health", self.url);
            if let Ok(out) = Command::new("curl").args(["-s", &health]).output() {
                let body = String::from_utf8_lossy(&out.stdout);
                if body.contains("\"healthy\"") {
                    assert!(body.contains("\"is_demo\":true"), "{body}");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "ltx2 serve --model demo never became healthy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().expect("command runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "command failed");
    stdout
}

#[test]
fn spec_clients_run_unchanged_against_the_demo_model() {
    let server = DemoServer::start();

    // The spec's bash script (its server comes from LTX_SERVER).
    let dir = temp_dir("demo-bash");
    std::fs::copy(
        Path::new(FIXTURES).join("spec_script.sh"),
        dir.join("spec_script.sh"),
    )
    .unwrap();
    let mut bash = Command::new("bash");
    bash.current_dir(&dir)
        .arg("spec_script.sh")
        .env("LTX_SERVER", &server.url);
    let stdout = run_ok(bash);
    assert!(
        stdout.contains("Saved: cat_piano.mp4 (1.96s, gen_time="),
        "{stdout}"
    );
    assert_spec_mp4(&dir.join("cat_piano.mp4"), 288, 512, 49);

    // The spec's Python client: text, image start, start + end, audio, quick preview.
    let dir = temp_dir("demo-python");
    std::fs::write(dir.join("start.png"), png_bytes(320, 240, 10)).unwrap();
    std::fs::write(dir.join("end.png"), png_bytes(200, 300, 90)).unwrap();
    std::fs::write(dir.join("speech.wav"), wav_bytes(16_000, 1, 1.5)).unwrap();
    let client = std::fs::read_to_string(Path::new(FIXTURES).join("spec_client.py")).unwrap();
    assert_eq!(client.matches("http://localhost:8000").count(), 1);
    std::fs::write(dir.join("spec_client.py"), &client).unwrap();
    // The client names its server only as a default argument; point that default at us.
    let wrapper = "import sys\nsrc = open('spec_client.py').read().replace('http://localhost:8000', sys.argv[1])\nexec(compile(src, 'spec_client.py', 'exec'))\n";
    let mut python = Command::new("python3");
    python.current_dir(&dir).args(["-c", wrapper, &server.url]);
    let stdout = run_ok(python);
    assert_eq!(stdout.matches("Saved: output.mp4").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("Has audio: True").count(), 5);
    assert_eq!(stdout.matches("Image start: True").count(), 2);
    assert_eq!(stdout.matches("Image end: True").count(), 1);
    // The last call (quick preview, 9 frames) left its video behind.
    assert_spec_mp4(&dir.join("output.mp4"), 288, 512, 9);
}
