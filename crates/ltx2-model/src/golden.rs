//! Golden-reference harness: loads the tensors produced by the official ltx-core 1.0.0 and compares
//! our outputs with them, using the tolerance derived from the set's own `tolerances.json`.
//!
//! One set per model generation ([`GoldenSet`]): LTX-2 (19B layout) in `$LTX2_GOLDEN_DIR`, else
//! the vendored `testdata/golden`; LTX-2.3 (22B layout) in `$LTX2_GOLDEN_23_DIR`, else
//! `testdata/golden-2.3`; LTX-2.5 (split layout) in `$LTX2_GOLDEN_25_DIR`, else
//! `testdata/golden-2.5`. Nothing here knows a golden's shapes: tests read inputs and expected
//! outputs from the files, so any set made the same way (other seeds, other shapes) is checked by
//! the same code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Tensor};

/// Which golden set: the official ltx-core 1.0.0 outputs on tiny models in one generation's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldenSet {
    /// LTX-2 (19B layout): `$LTX2_GOLDEN_DIR`, else `testdata/golden`.
    Ltx2,
    /// LTX-2.3 (22B layout): `$LTX2_GOLDEN_23_DIR`, else `testdata/golden-2.3`.
    Ltx23,
    /// LTX-2.5 (22B split layout, ltx-core 1.2.0): `$LTX2_GOLDEN_25_DIR`, else
    /// `testdata/golden-2.5`.
    Ltx25,
}

impl GoldenSet {
    /// The environment variable that overrides the vendored directory.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Ltx2 => "LTX2_GOLDEN_DIR",
            Self::Ltx23 => "LTX2_GOLDEN_23_DIR",
            Self::Ltx25 => "LTX2_GOLDEN_25_DIR",
        }
    }

    /// Where the set lives.
    pub fn dir(self) -> PathBuf {
        let vendored = match self {
            Self::Ltx2 => "golden",
            Self::Ltx23 => "golden-2.3",
            Self::Ltx25 => "golden-2.5",
        };
        match std::env::var_os(self.env_var()) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata")
                .join(vendored),
        }
    }

    /// `weights/<name>` inside the set (e.g. `model.safetensors`, `gemma`).
    pub fn weights_path(self, name: &str) -> PathBuf {
        self.dir().join("weights").join(name)
    }

    /// `configs/<name>` parsed as JSON.
    pub fn config_json(self, name: &str) -> Result<serde_json::Value> {
        let path = self.dir().join("configs").join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| err(format!("reading {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| err(format!("parsing {}: {e}", path.display())))
    }

    /// Loads `<dir>/<name>.safetensors` of this set (see [`Golden::load`]).
    pub fn load(self, name: &str) -> Result<Golden> {
        Golden::load_from(&self.dir(), name)
    }
}

/// Where the LTX-2 (19B layout) golden set lives; [`GoldenSet::dir`] for the others.
pub fn golden_dir() -> PathBuf {
    GoldenSet::Ltx2.dir()
}

/// The device parity tests run on: `LTX2_TEST_DEVICE=cpu|cuda` (default `cpu`), so the same tests
/// check a CUDA build (`cargo test --features cuda` with `LTX2_TEST_DEVICE=cuda`).
pub fn test_device() -> Result<Device> {
    match std::env::var("LTX2_TEST_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => Ok(Device::Cpu),
        Ok("cuda") => Device::new_cuda(0),
        Ok(other) => Err(err(format!(
            "LTX2_TEST_DEVICE={other}: expected cpu or cuda"
        ))),
    }
}

/// `weights/<name>` inside the LTX-2 golden set (e.g. `model.safetensors`, `gemma`).
pub fn weights_path(name: &str) -> PathBuf {
    GoldenSet::Ltx2.weights_path(name)
}

/// `configs/<name>` of the LTX-2 golden set parsed as JSON.
pub fn config_json(name: &str) -> Result<serde_json::Value> {
    GoldenSet::Ltx2.config_json(name)
}

/// The pipeline goldens (`testdata/golden-pipelines`, made by `scripts/golden/make.sh`), or
/// `$LTX2_GOLDEN_PIPELINES_DIR` (e.g. a hold-out set).
pub fn pipelines_dir() -> PathBuf {
    match std::env::var_os("LTX2_GOLDEN_PIPELINES_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden-pipelines"),
    }
}

/// The weights folder a pipelines set's `layout` (`2.0`, `2.3`) goldens were computed from, as
/// its `weights.json` says (`repo`: relative to the repository root, else to the set).
pub fn pipelines_weights_dir(dir: &Path, layout: &str) -> Result<PathBuf> {
    let path = dir.join("weights.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(format!("reading {}: {e}", path.display())))?;
    let w: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let entry = &w["weights"][layout];
    let rel = entry["path"]
        .as_str()
        .ok_or_else(|| err(format!("{}: no weights.{layout}.path", path.display())))?;
    Ok(match entry["location"].as_str() {
        Some("repo") => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel),
        _ => dir.join(rel),
    })
}

/// A LoRA stack as a pipelines golden's `params` list it: `[[path relative to the set,
/// strength], ...]`.
pub fn pipelines_lora_stack(
    dir: &Path,
    spec: &serde_json::Value,
) -> Result<crate::lora::LoraStack> {
    let mut s = crate::lora::LoraStack::default();
    for e in spec
        .as_array()
        .ok_or_else(|| err(format!("not a LoRA list: {spec}")))?
    {
        let (Some(rel), Some(strength)) = (e[0].as_str(), e[1].as_f64()) else {
            return Err(err(format!("not a [path, strength] pair: {e}")));
        };
        let path = dir.join(rel);
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = crate::lora::LoraFile::open(&path, &name).map_err(|e| err(e.to_string()))?;
        s.entries.push((std::sync::Arc::new(file), strength as f32));
    }
    Ok(s)
}

fn err(msg: String) -> candle_core::Error {
    candle_core::Error::Msg(msg)
}

/// How far an output may be from the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// `||ours - ref||_2 / ||ref||_2 <= tol`.
    RelL2(f64),
    /// `max |ours - ref| <= tol`.
    MaxAbs(f64),
    /// Bitwise equal (token ids, masks).
    Exact,
}

/// Result of one comparison, printed by [`Golden::check`].
#[derive(Debug, Clone)]
pub struct ParityReport {
    pub golden: String,
    pub key: String,
    pub rel_l2: f64,
    pub max_abs: f64,
    pub max_abs_over_absmax: f64,
    pub tolerance: Tolerance,
    pub passed: bool,
}

impl std::fmt::Display for ParityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parity {}:{} rel_l2={:.3e} max_abs={:.3e} max_abs/absmax={:.3e} tol={:?} -> {}",
            self.golden,
            self.key,
            self.rel_l2,
            self.max_abs,
            self.max_abs_over_absmax,
            self.tolerance,
            if self.passed { "ok" } else { "FAIL" }
        )
    }
}

/// Rounds up to the next value of the 1-2-5 series (1e-4, 2e-4, 5e-4, 1e-3, ...), which is how the
/// golden README turns "10x the float32-vs-float64 distance" into its suggested tolerances.
pub fn round_up_125(x: f64) -> f64 {
    let exp = x.log10().floor() as i32;
    // Built from the decimal literal so 5e-6 is exactly the f64 nearest to 5e-6.
    let value = |m: u32, e: i32| format!("{m}e{e}").parse::<f64>().expect("decimal literal");
    for m in [1, 2, 5] {
        // Relative slack so that an exact 2e-4 stays 2e-4 despite float noise.
        if x <= value(m, exp) * (1.0 + 1e-9) {
            return value(m, exp);
        }
    }
    value(1, exp + 1)
}

/// One golden file: every `in.*`, `out.*` and `dbg.*` tensor plus the tolerances for its outputs.
pub struct Golden {
    dir: PathBuf,
    name: String,
    tensors: HashMap<String, Tensor>,
    tolerances: serde_json::Map<String, serde_json::Value>,
}

impl Golden {
    /// Loads `<golden_dir>/<name>.safetensors` of the LTX-2 set on the CPU.
    pub fn load(name: &str) -> Result<Self> {
        Self::load_from(&golden_dir(), name)
    }

    /// Loads `<dir>/<name>.safetensors` on the CPU, with the tolerances of `<dir>/tolerances.json`.
    pub fn load_from(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(format!("{name}.safetensors"));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| err(format!("loading golden {}: {e}", path.display())))?;
        let tol_path = dir.join("tolerances.json");
        // A set without its measured tolerances is incomplete: refuse it rather than fall back to
        // a generic bound.
        let text = std::fs::read_to_string(&tol_path)
            .map_err(|e| err(format!("reading {}: {e}", tol_path.display())))?;
        let tolerances = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| err(format!("parsing {}: {e}", tol_path.display())))?
            .get(name)
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            tensors,
            tolerances,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the file holds `key`.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// A tensor by its full key (`in.video_latent`, `out.video.velocity`, ...).
    pub fn get(&self, key: &str) -> Result<Tensor> {
        self.tensors
            .get(key)
            .cloned()
            .ok_or_else(|| err(format!("golden {} has no tensor {key}", self.name)))
    }

    /// A tensor converted to f32 on `device`.
    pub fn get_f32(&self, key: &str, device: &Device) -> Result<Tensor> {
        self.get(key)?.to_dtype(DType::F32)?.to_device(device)
    }

    /// Keys starting with `prefix`, sorted.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The tolerance for an output key, derived from `tolerances.json`: 10x the measured
    /// float32-vs-float64 relative L2 distance (at least 1e-6), rounded up on the 1-2-5 series.
    pub fn tolerance(&self, key: &str) -> Tolerance {
        let entry = self.tolerances.get(key);
        if let Some(rel) = entry
            .and_then(|e| e.get("rel_l2_f32_vs_f64"))
            .and_then(|v| v.as_f64())
        {
            return Tolerance::RelL2(round_up_125((10.0 * rel).max(1e-6)));
        }
        if let Some(note) = entry.and_then(|e| e.get("note")).and_then(|v| v.as_str()) {
            if note.contains("1e-6 abs") {
                return Tolerance::MaxAbs(1e-6);
            }
        }
        // Integer outputs (ids, masks) are not listed: they must match exactly.
        match self.tensors.get(key).map(|t| t.dtype()) {
            Some(DType::I64 | DType::U32 | DType::U8) => Tolerance::Exact,
            // A float output the set gives no number for: the README's generic float32 bound.
            _ => Tolerance::RelL2(1e-4),
        }
    }

    /// Compares `ours` with the reference `key` (shapes must match exactly), prints the errors and
    /// returns the report; `passed` is false above the tolerance.
    pub fn compare(&self, key: &str, ours: &Tensor) -> Result<ParityReport> {
        self.compare_with(key, ours, self.tolerance(key))
    }

    /// Like [`Golden::compare`] with an explicit tolerance.
    pub fn compare_with(
        &self,
        key: &str,
        ours: &Tensor,
        tolerance: Tolerance,
    ) -> Result<ParityReport> {
        self.compare_to(key, ours, &self.get(key)?, tolerance)
    }

    /// Compares `ours` with `reference`, a part of the golden tensor `key` (e.g. its valid
    /// tokens), under the tolerance the set gives for `key`; reported as `label`.
    pub fn compare_part(
        &self,
        key: &str,
        label: &str,
        ours: &Tensor,
        reference: &Tensor,
    ) -> Result<ParityReport> {
        self.compare_to(label, ours, reference, self.tolerance(key))
    }

    fn compare_to(
        &self,
        label: &str,
        ours: &Tensor,
        reference: &Tensor,
        tolerance: Tolerance,
    ) -> Result<ParityReport> {
        if reference.dims() != ours.dims() {
            return Err(err(format!(
                "golden {}:{label}: shape {:?} but ours is {:?}",
                self.name,
                reference.dims(),
                ours.dims()
            )));
        }
        let r = reference
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let o = ours
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let (mut diff2, mut ref2, mut max_abs, mut absmax) = (0f64, 0f64, 0f64, 0f64);
        let mut non_finite = false;
        for (a, b) in o.iter().zip(r.iter()) {
            non_finite |= !a.is_finite();
            let d = a - b;
            diff2 += d * d;
            ref2 += b * b;
            max_abs = max_abs.max(d.abs());
            absmax = absmax.max(b.abs());
        }
        let rel_l2 = if ref2 > 0.0 {
            (diff2 / ref2).sqrt()
        } else {
            diff2.sqrt()
        };
        let max_abs_over_absmax = if absmax > 0.0 {
            max_abs / absmax
        } else {
            max_abs
        };
        let passed = !non_finite
            && match tolerance {
                Tolerance::RelL2(t) => rel_l2 <= t,
                Tolerance::MaxAbs(t) => max_abs <= t,
                Tolerance::Exact => max_abs == 0.0,
            };
        let report = ParityReport {
            golden: self.name.clone(),
            key: label.to_string(),
            rel_l2,
            max_abs,
            max_abs_over_absmax,
            tolerance,
            passed,
        };
        println!("{report}");
        Ok(report)
    }

    /// [`Golden::compare`] that turns a failure into an error, for `?` in tests.
    pub fn check(&self, key: &str, ours: &Tensor) -> Result<ParityReport> {
        let report = self.compare(key, ours)?;
        if report.passed {
            Ok(report)
        } else {
            Err(err(format!("{report}")))
        }
    }

    /// The JSON `info` metadata entry of the file (producer and notes), if any.
    pub fn info(&self) -> Option<serde_json::Value> {
        let path = self.dir.join(format!("{}.safetensors", self.name));
        let bytes = std::fs::read(path).ok()?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
        let info = meta.metadata().as_ref()?.get("info")?.clone();
        serde_json::from_str(&info).ok()
    }
}

/// Collects the comparisons of one golden so a run prints every error, then fails on any — and
/// on any golden tensor under the given prefixes that no comparison covered (a new output the
/// generator added must not pass unnoticed).
pub struct Checks<'a> {
    g: &'a Golden,
    reports: Vec<ParityReport>,
    failures: Vec<String>,
    checked: std::collections::BTreeSet<String>,
}

impl<'a> Checks<'a> {
    pub fn new(g: &'a Golden) -> Self {
        Self {
            g,
            reports: Vec::new(),
            failures: Vec::new(),
            checked: Default::default(),
        }
    }

    pub fn golden(&self) -> &'a Golden {
        self.g
    }

    /// [`Golden::compare`], recorded.
    pub fn check(&mut self, key: &str, ours: &Tensor) -> Result<()> {
        let tol = self.g.tolerance(key);
        self.check_with(key, ours, tol)
    }

    /// [`Golden::compare_with`], recorded.
    pub fn check_with(&mut self, key: &str, ours: &Tensor, tolerance: Tolerance) -> Result<()> {
        let report = self.g.compare_with(key, ours, tolerance)?;
        self.push(key, report);
        Ok(())
    }

    /// [`Self::check`] when the golden holds `key` (debug intermediates differ between sets).
    pub fn check_if_present(&mut self, key: &str, ours: &Tensor) -> Result<()> {
        if self.g.has(key) {
            self.check(key, ours)?;
        }
        Ok(())
    }

    /// [`Golden::compare_part`], recorded; `key` counts as covered.
    pub fn check_part(
        &mut self,
        key: &str,
        label: &str,
        ours: &Tensor,
        reference: &Tensor,
    ) -> Result<()> {
        let report = self.g.compare_part(key, label, ours, reference)?;
        self.push(key, report);
        Ok(())
    }

    /// Records a report made elsewhere for golden tensor `key`.
    pub fn push(&mut self, key: &str, report: ParityReport) {
        self.checked.insert(key.to_string());
        self.reports.push(report);
    }

    /// Records a failure that is not a numeric comparison (e.g. an exact id mismatch).
    pub fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Marks `key` as covered without a comparison (e.g. an input).
    pub fn covered(&mut self, key: &str) {
        self.checked.insert(key.to_string());
    }

    pub fn reports(&self) -> &[ParityReport] {
        &self.reports
    }

    /// Errors on any failed comparison, recorded failure, or golden tensor starting with one of
    /// `prefixes` that was not compared.
    pub fn finish(self, prefixes: &[&str]) -> Result<()> {
        let mut failed: Vec<String> = self
            .reports
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.to_string())
            .chain(self.failures)
            .collect();
        for prefix in prefixes {
            for key in self.g.keys_with_prefix(prefix) {
                if !self.checked.contains(&key) {
                    failed.push(format!(
                        "{}:{key} is in the golden but was not checked",
                        self.g.name
                    ));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(err(format!(
                "{} parity failures:\n{}",
                failed.len(),
                failed.join("\n")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_125_matches_the_readme_table() {
        // (10 x measured distance) -> suggested tolerance, as listed in the golden README.
        assert_eq!(round_up_125(10.0 * 1.53e-5), 2e-4);
        assert_eq!(round_up_125(10.0 * 8.89e-6), 1e-4);
        assert_eq!(round_up_125(10.0 * 2.81e-7), 5e-6);
        assert_eq!(round_up_125(10.0 * 2.08e-5), 5e-4);
        assert_eq!(round_up_125(10.0 * 4.54e-6), 5e-5);
        assert_eq!(round_up_125(1e-6), 1e-6);
    }

    #[test]
    fn compare_detects_a_wrong_tensor() {
        let g = Golden::load("vocoder").expect("vendored golden");
        let key = "out.waveform";
        let reference = g.get(key).unwrap();
        assert!(g.compare(key, &reference).unwrap().passed);
        let wrong = (reference.clone() * 1.01).unwrap();
        assert!(!g.compare(key, &wrong).unwrap().passed);
    }
}
