//! What a user does first: `ltx2 serve --model demo`, then the spec's own clients, unchanged; and
//! the same with a model folder in the LTX-2.3 layout (the 2.3 golden set's tiny weights).
//!
//! Runs the real binary (model loading, engine thread, HTTP, MP4 writer) and checks the MP4s the
//! spec's bash script and Python client save with ffprobe. The fixtures and helpers are the server
//! crate's, so the two test suites cannot drift apart.

#[path = "../../ltx2-server/tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_spec_mp4_at, png_bytes, temp_dir, wav_bytes};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ltx2-server/tests/fixtures");

/// `ltx2 serve --model <model>` on a free loopback port; killed on drop.
struct DemoServer {
    child: Child,
    url: String,
    is_demo: bool,
}

impl DemoServer {
    fn start() -> Self {
        Self::start_model("demo")
    }

    fn start_model(model: &str) -> Self {
        Self::start_with(model, &[])
    }

    fn start_with(model: &str, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_ltx2"))
            .args(["serve", "--model", model, "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ltx2 binary runs");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            is_demo: model == "demo",
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
                    let demo = format!("\"is_demo\":{}", self.is_demo);
                    assert!(body.contains(&demo), "{body}");
                    return;
                }
            }
            assert!(Instant::now() < deadline, "ltx2 serve never became healthy");
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

/// The spec's bash script and Python client against `server`; every MP4 they save must be H.264
/// yuv420p with stereo AAC at `audio_rate`.
fn run_spec_clients(server: &DemoServer, tag: &str, audio_rate: u64) {
    // The spec's bash script (its server comes from LTX_SERVER).
    let dir = temp_dir(&format!("{tag}-bash"));
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
    assert_spec_mp4_at(&dir.join("cat_piano.mp4"), 288, 512, 49, audio_rate);

    // The spec's Python client: text, image start, start + end, audio, quick preview.
    let dir = temp_dir(&format!("{tag}-python"));
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
    assert_spec_mp4_at(&dir.join("output.mp4"), 288, 512, 9, audio_rate);
}

#[test]
fn spec_clients_run_unchanged_against_the_demo_model() {
    let server = DemoServer::start();
    run_spec_clients(&server, "demo", 24_000);
}

/// `ltx2 serve --model <folder in the LTX-2.3 layout>`: the spec's curl example, bash script and
/// Python client work unchanged, `GET /`, the OpenAPI description and every response name the
/// generation and its 48 kHz audio, and the MP4s carry 48 kHz stereo AAC.
#[test]
fn spec_clients_run_unchanged_against_an_ltx23_model_folder() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden-2.3/weights");
    let server = DemoServer::start_model(folder.to_str().unwrap());
    let get = |path: &str| -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", &format!("{}{path}", server.url)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let info = get("/");
    assert_eq!(info["model"]["generation"], "LTX-2.3 (22B)", "{info}");
    assert_eq!(info["model"]["audio_sample_rate"], 48_000);
    // GET / says which compute backends run and why: a CPU server runs the reference paths
    // (the fields a CUDA build fills with cudnn-sdpa / cudnn / fused-cuda).
    let b = &info["model"]["backends"];
    assert_eq!(b["attention"], "chunked", "{info}");
    assert_eq!(b["conv3d"], "candle-cpu");
    assert_eq!(b["elementwise"], "candle");
    assert_eq!(b["fp8_mode"], "none");
    assert_eq!(b["fp8_gemm"], "dequant-cpu");
    assert!(b["cudnn"].is_null());
    assert!(b["fallbacks"].is_object());
    // A dev checkpoint: LTX_2_3_PARAMS' 30 steps when a request gives none.
    assert_eq!(info["defaults"]["num_inference_steps"], 30);
    assert!(info["description"].as_str().unwrap().contains("48000 Hz"));
    let doc = get("/openapi.json");
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("LTX-2.3 (22B)") && description.contains("48000 Hz"));

    // The README's first curl example, a small size.
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{}/generate", server.url)])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(r#"{"prompt": "A cat sitting calmly on a cushion, soft purring", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 2}"#)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["audio_sample_rate"], 48_000, "{}", r["notes"]);
    assert_eq!(r["model_generation"], "LTX-2.3 (22B)");
    assert_eq!(r["effective"]["steps_per_stage"], serde_json::json!([2]));

    run_spec_clients(&server, "ltx23", 48_000);
}

/// `ltx2 serve --model <folder in the LTX-2.5 split layout>` (the 2.5 golden set's tiny weights):
/// the spec's clients work unchanged with 48 kHz stereo AAC, and `num_frames: "auto"` lets the
/// duration head choose the length, which the response reports and the MP4 has.
#[test]
fn spec_clients_and_auto_duration_against_an_ltx25_model_folder() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden-2.5/weights");
    let server = DemoServer::start_model(folder.to_str().unwrap());
    let get = |path: &str| -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", &format!("{}{path}", server.url)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let info = get("/");
    assert_eq!(info["model"]["generation"], "LTX-2.5 (22B)", "{info}");
    assert_eq!(info["model"]["audio_sample_rate"], 48_000);
    assert_eq!(info["model"]["auto_duration"], true);
    assert_eq!(info["model"]["pipeline"], "distilled_two_stage");
    let doc = get("/openapi.json");
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("LTX-2.5 (22B)") && description.contains("\"auto\""));

    // An automatic length within 0.5 to 1.5 s, with an image for the last frame.
    let dir = temp_dir("ltx25-auto");
    let png = base64_png(&png_bytes(64, 64, 200));
    let body = serde_json::json!({
        "prompt": "A dog barks twice at the mailman",
        "width": 64, "height": 64, "num_frames": "auto",
        "min_duration_seconds": 0.5, "max_duration_seconds": 1.5,
        "image_end": png, "seed": 9,
    });
    std::fs::write(dir.join("auto.json"), body.to_string()).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{}/generate", server.url)])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(format!("@{}", dir.join("auto.json").display()))
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = r["notes"].to_string();
    let frames = r["num_frames"].as_u64().unwrap_or_else(|| panic!("{r}"));
    println!("auto duration: {frames} frames; notes {notes}");
    assert!(frames % 8 == 1 && (9..=33).contains(&frames), "{frames}");
    assert!(
        notes.contains("num_frames auto: the duration head predicted"),
        "{notes}"
    );
    assert_eq!(r["effective"]["num_frames"], frames);
    assert_eq!(
        r["duration_seconds"],
        ((frames as f64 / 25.0) * 100.0).round() / 100.0
    );
    assert_eq!(r["model_generation"], "LTX-2.5 (22B)");
    let b64 = r["video"].as_str().unwrap();
    let b64 = b64.strip_prefix("data:video/mp4;base64,").unwrap();
    use base64::Engine as _;
    let mp4 = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    std::fs::write(dir.join("auto.mp4"), mp4).unwrap();
    assert_spec_mp4_at(&dir.join("auto.mp4"), 64, 64, frames, 48_000);

    run_spec_clients(&server, "ltx25", 48_000);
}

fn base64_png(png: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// `--lora-dir`: `GET /loras` lists the folder's LoRAs with whether they fit, `/generate` and
/// `/jobs` take `loras` and echo them in `effective.loras`, and bad names are 422 on `loras`.
#[test]
fn loras_per_request_through_the_real_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let folder = root.join("testdata/golden/weights");
    let loras = root.join("testdata/golden-pipelines/loras");
    let server = DemoServer::start_with(
        folder.to_str().unwrap(),
        &["--lora-dir", loras.to_str().unwrap()],
    );
    let curl = |args: &[&str]| -> (String, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.to_string(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    };
    let (code, list) = curl(&[&format!("{}/loras", server.url)]);
    assert_eq!(code, "200");
    assert_eq!(list["enabled"], true);
    let entries = list["loras"].as_array().unwrap();
    let entry = |n: &str| entries.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(entries.len(), 8, "{list}");
    assert_eq!(entry("2.0-a")["fits_loaded_model"], true);
    assert_eq!(entry("2.0-a")["rank"], 4);
    assert_eq!(entry("2.3-a")["fits_loaded_model"], false);
    assert_eq!(entry("2.3-a")["generations"], "LTX-2.3, LTX-2.5");
    assert_eq!(
        entry("2.0-ic")["metadata"]["reference_downscale_factor"],
        "2"
    );

    let post = |path: &str, body: &str| {
        curl(&[
            "-X",
            "POST",
            &format!("{}{path}", server.url),
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ])
    };
    let small = r#""width": 64, "height": 64, "num_frames": 9, "seed": 3"#;
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{"prompt": "a fox", {small}, "loras": [{{"name": "2.0-a", "strength": 0.8}}]}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(
        r["effective"]["loras"],
        serde_json::json!([{"name": "2.0-a", "strength": 0.8}])
    );
    // Back and forth: the first request ran on a fresh server; after another set and the base
    // model, the same set and seed give bitwise the same MP4.
    let first = r["video"].as_str().unwrap().to_string();
    for other in [r#"[{"name": "2.0-b", "strength": 1.3}]"#, "[]"] {
        let (code, r) = post(
            "/generate",
            &format!(r#"{{"prompt": "a fox", {small}, "loras": {other}}}"#),
        );
        assert_eq!(code, "200", "{r}");
        assert_ne!(r["video"].as_str().unwrap(), first);
    }
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{"prompt": "a fox", {small}, "loras": [{{"name": "2.0-a", "strength": 0.8}}]}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(
        r["video"].as_str().unwrap(),
        first,
        "switching back changed the video"
    );
    for bad in [
        r#"[{"name": "../loras/2.0-a"}]"#,
        r#"[{"name": "unknown"}]"#,
        r#"[{"name": "2.0-a", "strength": 99}]"#,
        r#"[{"name": "2.3-a"}]"#,
    ] {
        let (code, r) = post(
            "/generate",
            &format!(r#"{{"prompt": "a fox", {small}, "loras": {bad}}}"#),
        );
        assert_eq!(code, "422", "{bad}: {r}");
        assert_eq!(r["field"], "loras", "{bad}: {r}");
    }
    // The async jobs take the same field.
    let (code, job) = post(
        "/jobs",
        &format!(r#"{{"prompt": "a fox", {small}, "loras": [{{"name": "2.0-b"}}]}}"#),
    );
    assert_eq!(code, "202", "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, r) = curl(&[&format!("{}/jobs/{id}/result.json", server.url)]);
        if code == "200" {
            assert_eq!(r["effective"]["loras"][0]["name"], "2.0-b", "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "job never finished: {code} {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// POSTs `body` (written to a file in `dir`: media bodies are too long for an argument).
fn post_file(
    server: &DemoServer,
    dir: &Path,
    path: &str,
    body: &str,
) -> (String, serde_json::Value) {
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST"])
        .arg(format!("{}{path}", server.url))
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body_file.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.to_string(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Waits for job `id` and returns its result.
fn job_result(server: &DemoServer, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .arg(format!("{}/jobs/{id}/result.json", server.url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        if code == "200" {
            return serde_json::from_str(body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "job never finished: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `control_video` through the real server: an ffmpeg/libx264 High-profile MP4 (B-frames) with
/// an IC-LoRA from the LoRA folder runs the IC-LoRA recipe on /generate and /jobs; a clip that
/// is not base64, not an MP4, truncated, or comes without an IC-LoRA, a strength out of range,
/// and audio with a control video are 422s naming the field.
#[test]
fn control_video_through_the_real_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let folder = root.join("testdata/golden/weights");
    let loras = root.join("testdata/golden-pipelines/loras");
    let dir = temp_dir("control-video");
    let clip = dir.join("pose.mp4");
    let ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=80x48:rate=24")
        .args([
            "-t",
            "0.5",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "2",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ffmpeg.success());
    let mp4 = std::fs::read(&clip).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mp4);
    let truncated = base64::engine::general_purpose::STANDARD.encode(&mp4[..mp4.len() / 3]);
    let server = DemoServer::start_with(
        folder.to_str().unwrap(),
        &["--lora-dir", loras.to_str().unwrap()],
    );
    let post = |path: &str, body: &str| post_file(&server, &dir, path, body);
    let small = r#""prompt": "a dancer", "width": 64, "height": 64, "num_frames": 9, "seed": 5"#;
    let ic = r#""loras": [{"name": "2.0-ic"}]"#;
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{{small}, {ic}, "control_video": "{b64}", "control_attention_strength": 0.7}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["effective"]["pipeline"], "ic_lora", "{r}");
    assert_eq!(r["resolution"], "64x64", "{r}");
    for (body, field) in [
        (
            format!(r#"{{{small}, {ic}, "control_video": "not base64 !"}}"#),
            "control_video",
        ),
        (
            format!(r#"{{{small}, {ic}, "control_video": "aGVsbG8gd29ybGQ="}}"#),
            "control_video",
        ),
        (
            format!(r#"{{{small}, {ic}, "control_video": "{truncated}"}}"#),
            "control_video",
        ),
        (
            format!(r#"{{{small}, "control_video": "{b64}"}}"#),
            "control_video",
        ),
        (
            format!(r#"{{{small}, {ic}, "control_video": "{b64}", "control_strength": 2}}"#),
            "control_strength",
        ),
        (
            format!(
                r#"{{{small}, {ic}, "control_video": "{b64}", "audio": "{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(wav_bytes(16_000, 1, 1.0))
            ),
            "audio",
        ),
    ] {
        let (code, r) = post("/generate", &body);
        assert_eq!(code, "422", "{field}: {r}");
        assert_eq!(r["field"], field, "{r}");
    }
    let (code, job) = post(
        "/jobs",
        &format!(r#"{{{small}, {ic}, "control_video": "{b64}"}}"#),
    );
    assert_eq!(code, "202", "{job}");
    let r = job_result(&server, job["id"].as_str().unwrap());
    assert_eq!(r["effective"]["pipeline"], "ic_lora", "{r}");
}

/// The timeline fields through the real server: `keyframes` at any frame, `video` + `retake`
/// (an ffmpeg/libx264 High-profile clip with AAC at 44.1 kHz whose size is not a multiple of 32
/// and whose length is not 8k + 1) and `video` + `extend`, on /generate and /jobs; the output
/// keeps the clip's size and rate; every inconsistent entry is a 422 naming its field.
#[test]
fn timeline_requests_through_the_real_server() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let folder = root.join("testdata/golden/weights");
    let dir = temp_dir("timeline");
    let make = |name: &str, audio: bool| -> Vec<u8> {
        let path = dir.join(name);
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=80x48:rate=24");
        if audio {
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100"])
                .args(["-c:a", "aac", "-ac", "2"]);
        }
        cmd.args([
            "-frames:v",
            "20",
            "-t",
            "0.8334",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
        ])
        .args(["-bf", "2", "-pix_fmt", "yuv420p"])
        .arg(&path);
        assert!(cmd.status().unwrap().success());
        std::fs::read(&path).unwrap()
    };
    let with_audio = b64(&make("clip.mp4", true));
    let silent = b64(&make("silent.mp4", false));
    let server = DemoServer::start_with(folder.to_str().unwrap(), &[]);
    let post = |path: &str, body: &str| post_file(&server, &dir, path, body);
    let png = base64_png(&png_bytes(40, 32, 7));
    let small =
        r#""prompt": "a lighthouse", "width": 64, "height": 64, "num_frames": 17, "seed": 9"#;
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{{small}, "keyframes": [{{"image": "{png}", "frame": 0}}, {{"image": "{png}", "frame": 11, "strength": 0.8}}, {{"image": "{png}", "frame": 16, "strength": 0.9}}]}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["num_frames"], 17, "{r}");
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{"prompt": "rain", "video": "{with_audio}", "retake": {{"start_seconds": 0.2, "end_seconds": 0.5}}}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["effective"]["pipeline"], "retake", "{r}");
    assert_eq!(r["resolution"], "80x48", "{r}");
    assert_eq!(r["num_frames"], 20, "{r}");
    assert_eq!(r["fps"], 24, "{r}");
    assert_eq!(r["has_audio"], true, "{r}");
    let (code, r) = post(
        "/generate",
        &format!(
            r#"{{"prompt": "rain", "video": "{with_audio}", "extend": {{"num_frames": 16}}}}"#
        ),
    );
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["effective"]["pipeline"], "extend", "{r}");
    assert_eq!(r["num_frames"], 36, "{r}");
    for (body, field) in [
        (
            format!(
                r#"{{{small}, "image_start": "{png}", "keyframes": [{{"image": "{png}", "frame": 0}}]}}"#
            ),
            "keyframes",
        ),
        (
            format!(r#"{{{small}, "keyframes": [{{"image": "{png}", "frame": 17}}]}}"#),
            "keyframes",
        ),
        (
            format!(
                r#"{{{small}, "keyframes": [{{"image": "{png}", "frame": 3, "stength": 1}}]}}"#
            ),
            "keyframes",
        ),
        (
            format!(r#"{{{small}, "keyframes": [{{"image": "bad", "frame": 3}}]}}"#),
            "keyframes",
        ),
        (
            format!(
                r#"{{"prompt": "x", "video": "{with_audio}", "retake": {{"start_seconds": 0.5, "end_seconds": 2.0}}}}"#
            ),
            "retake",
        ),
        (
            format!(
                r#"{{"prompt": "x", "video": "{silent}", "retake": {{"start_seconds": 0.1, "end_seconds": 0.3, "regenerate": "audio"}}}}"#
            ),
            "retake",
        ),
        (
            format!(
                r#"{{"prompt": "x", "video": "{with_audio}", "retake": {{"start_seconds": 0.1, "end_seconds": 0.3, "regenerate": "all"}}}}"#
            ),
            "retake",
        ),
        (
            format!(r#"{{"prompt": "x", "video": "{with_audio}"}}"#),
            "video",
        ),
        (
            format!(
                r#"{{"prompt": "x", "video": "{}", "extend": {{"num_frames": 8}}}}"#,
                &with_audio[..with_audio.len() / 3]
            ),
            "video",
        ),
        (
            r#"{"prompt": "x", "extend": {"num_frames": 8}}"#.to_string(),
            "extend",
        ),
        (
            format!(
                r#"{{"prompt": "x", "video": "{with_audio}", "extend": {{"num_frames": 100000}}}}"#
            ),
            "extend",
        ),
    ] {
        let (code, r) = post("/generate", &body);
        assert_eq!(code, "422", "{field}: {r}");
        assert_eq!(r["field"], field, "{r}");
    }
    let (code, job) = post(
        "/jobs",
        &format!(r#"{{"prompt": "rain", "video": "{silent}", "extend": {{"num_frames": 8}}}}"#),
    );
    assert_eq!(code, "202", "{job}");
    let r = job_result(&server, job["id"].as_str().unwrap());
    assert_eq!(r["num_frames"], 28, "{r}");
}
