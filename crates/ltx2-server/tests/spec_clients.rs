//! The spec's own clients, copied verbatim into tests/fixtures/, run unchanged against the real
//! server (only the server URL substituted, through what each already exposes), and the MP4s they
//! save checked with ffprobe.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::*;
use ltx2_server::ServerConfig;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

async fn run(mut cmd: Command) -> std::process::Output {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("command runs"))
        .await
        .unwrap();
    println!(
        "stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(4000)
            .collect::<String>()
    );
    println!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_python_client_runs_unchanged() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let dir = temp_dir("python");
    std::fs::write(dir.join("start.png"), png_bytes(320, 240, 10)).unwrap();
    std::fs::write(dir.join("end.png"), png_bytes(200, 300, 90)).unwrap();
    std::fs::write(dir.join("speech.wav"), wav_bytes(16_000, 1, 1.5)).unwrap();

    // The client exposes the server only as the `server=` default; point that default at us.
    let client = fixture("spec_client.py");
    assert_eq!(client.matches("http://localhost:8000").count(), 1);
    std::fs::write(dir.join("spec_client.py"), &client).unwrap();
    let wrapper = "import sys\nsrc = open('spec_client.py').read().replace('http://localhost:8000', sys.argv[1])\nexec(compile(src, 'spec_client.py', 'exec'))\n";
    let mut cmd = Command::new("python3");
    cmd.current_dir(&dir).args(["-c", wrapper, &server.url]);
    let out = run(cmd).await;
    assert!(out.status.success(), "spec Python client failed");

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("Saved: output.mp4").count(), 5);
    assert_eq!(stdout.matches("Has audio: True").count(), 5);
    assert_eq!(stdout.matches("Image start: True").count(), 2);
    assert_eq!(stdout.matches("Image end: True").count(), 1);
    // The last call (quick preview) left its video behind.
    assert_spec_mp4(&dir.join("output.mp4"), 288, 512, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_bash_script_runs_unchanged() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let dir = temp_dir("bash");
    std::fs::write(dir.join("spec_script.sh"), fixture("spec_script.sh")).unwrap();
    let mut cmd = Command::new("bash");
    cmd.current_dir(&dir)
        .arg("spec_script.sh")
        .env("LTX_SERVER", &server.url);
    let out = run(cmd).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Saved: cat_piano.mp4 (1.96s, gen_time="),
        "{stdout}"
    );
    assert_spec_mp4(&dir.join("cat_piano.mp4"), 288, 512, 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_curl_examples_work() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let dir = temp_dir("curl");
    std::fs::write(dir.join("input.wav"), wav_bytes(22_050, 1, 0.5)).unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    let host = server.url.trim_start_matches("http://");
    let script = [
        fixture("spec_quickstart.sh"),
        fixture("spec_audio_example.sh"),
        fixture("spec_other_endpoints.sh"),
    ]
    .join("\n")
    .replace("<SERVER>:8000", host)
    .replace("<BASE64_IMAGE>", &b64(png_bytes(96, 160, 1)))
    .replace("<START_IMAGE>", &b64(png_bytes(96, 160, 2)))
    .replace("<END_IMAGE>", &b64(png_bytes(96, 160, 3)));
    std::fs::write(dir.join("examples.sh"), &script).unwrap();
    let mut cmd = Command::new("bash");
    cmd.current_dir(&dir).args(["-e", "examples.sh"]);
    let out = run(cmd).await;
    assert!(out.status.success());

    let responses: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("every example prints JSON");
    assert_eq!(
        responses.len(),
        8,
        "5 quick-start + 1 audio generate, /health, /"
    );
    // (frames, has_image_start, has_image_end) of each generate example, in spec order.
    let expected = [
        (49, false, false),
        (49, false, false),
        (9, false, false),
        (49, true, false),
        (49, true, true),
        (49, false, false),
    ];
    for (i, (r, (frames, start, end))) in responses.iter().zip(expected).enumerate() {
        assert!(r.get("error").is_none(), "example {i}: {r}");
        assert_eq!(r["resolution"], "288x512");
        assert_eq!(r["fps"], 25);
        assert_eq!(
            (r["has_image_start"].as_bool(), r["has_image_end"].as_bool()),
            (Some(start), Some(end)),
            "example {i}"
        );
        assert_eq!(r["has_audio"], true);
        let path = dir.join(format!("example{i}.mp4"));
        std::fs::write(&path, decode_video_field(r)).unwrap();
        assert_spec_mp4(&path, 288, 512, frames);
    }
    assert_eq!(responses[6]["status"], "healthy");
    assert_eq!(responses[7]["defaults"]["num_frames"], 49);
}
