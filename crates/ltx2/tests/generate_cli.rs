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
