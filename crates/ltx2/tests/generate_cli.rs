//! `ltx2 generate` on the golden tiny weights folder as shipped (`model.safetensors`,
//! `model_fp8.safetensors`, `upsampler.safetensors`, `gemma/`: not the release file names, so the
//! folder is recognised by its metadata) and on `--model demo`.

#[path = "../../ltx2-server/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::{ffprobe, temp_dir};
use ltx2_model::golden::weights_path;
use ltx2_pipeline::engine::ModelFiles;
use ltx2_pipeline::PipelineKind;

#[test]
fn golden_weights_folder_is_discovered_by_metadata() {
    let dir = weights_path("");
    let files = ModelFiles::discover(&dir).expect("golden folder is a model folder");
    // The distilled FP8 checkpoint is preferred, as with the release names.
    assert_eq!(files.checkpoint, dir.join("model_fp8.safetensors"));
    assert_eq!(files.upsampler, Some(dir.join("upsampler.safetensors")));
    assert_eq!(files.gemma, dir.join("gemma"));
    assert_eq!(files.pipeline(), PipelineKind::DistilledTwoStage);
}

#[test]
fn generate_writes_an_mp4_from_the_golden_weights_and_the_demo() {
    let out_dir = temp_dir("generate-cli");
    let golden = weights_path("");
    for (model, name) in [
        (golden.to_str().unwrap(), "golden.mp4"),
        ("demo", "demo.mp4"),
    ] {
        let out = out_dir.join(name);
        let status = Command::new(env!("CARGO_BIN_EXE_ltx2"))
            .args([
                "generate",
                "--model",
                model,
                "--prompt",
                "A cat playing piano",
            ])
            .args(["--num-frames", "9", "--seed", "7", "-o"])
            .arg(&out)
            .status()
            .expect("ltx2 runs");
        assert!(status.success(), "ltx2 generate --model {model} failed");
        let probe = ffprobe(&out);
        assert_eq!(probe.video_codec, "h264");
        assert_eq!((probe.width, probe.height, probe.frames), (288, 512, 9));
        assert_eq!(probe.audio, Some(("aac".to_string(), 24_000, 2)));
    }
}

/// `--quantization` on the golden folder (its FP8 checkpoint is picked): fp8-scaled-mm runs,
/// fp8-cast is refused at load with the reason, and so is a mode name that does not exist.
#[test]
fn generate_quantization_modes_on_the_fp8_golden_checkpoint() {
    let out_dir = temp_dir("generate-quantization");
    let golden = weights_path("");
    let run = |mode: &str, out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_ltx2"))
            .args(["generate", "--model", golden.to_str().unwrap()])
            .args(["--prompt", "A cat", "--num-frames", "9", "--seed", "7"])
            .args([
                "--width",
                "64",
                "--height",
                "64",
                "--quantization",
                mode,
                "-o",
            ])
            .arg(out)
            .output()
            .expect("ltx2 runs")
    };
    let out = out_dir.join("scaled_mm.mp4");
    let ok = run("fp8-scaled-mm", &out);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(ffprobe(&out).frames, 9);
    let refused = run("fp8-cast", &out_dir.join("cast.mp4"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("fp8-cast") && err.contains("already FP8"),
        "{err}"
    );
    let unknown = run("int4", &out_dir.join("int4.mp4"));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && err.contains("fp8-scaled-mm"),
        "{err}"
    );
}

/// `ltx2 inspect --memory` on the FP8 golden checkpoint: every component, the modes the file
/// serves (not fp8-cast), the totals.
#[test]
fn inspect_memory_reports_the_modes_a_file_serves() {
    let out = Command::new(env!("CARGO_BIN_EXE_ltx2"))
        .args(["inspect", "--memory", "--dtype", "f32"])
        .arg(weights_path("model_fp8.safetensors"))
        .arg("--upsampler")
        .arg(weights_path("upsampler.safetensors"))
        .output()
        .expect("ltx2 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "| transformer |",
        "| video VAE |",
        "| upsampler |",
        "fp8 file, none",
        "fp8 file, fp8-scaled-mm",
        "**everything**",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("fp8-cast"), "{text}");
}
