//! The tensor layout of a release at its real sizes (the combined checkpoint, its FP8 twin, the
//! Gemma-3 folder, the x2 upsampler), recorded by running the loaders over a backend that hands
//! out one-element placeholders broadcast to each requested shape: the names and shapes are
//! exactly what the loaders read, and no tensor the size of a weight is allocated. With
//! [`ltx2_model::memory`] it gives the resident bytes of the 19B and 22B plans without the files
//! (`ltx2 inspect --memory --layout 19b`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::TensorEntry;
use ltx2_model::quantization::{fp8_scaled_mm_layer, GemmaQuantization, Quantization};
use safetensors::Dtype;

use super::random::RandomBackend;
use super::{absent_suffixes, build, sizes, File, ModelSize, RandomModelOptions};
use crate::api::{GenError, PipelineKind};

/// One file's tensors by key.
pub type Tensors = BTreeMap<String, TensorEntry>;

/// The files of one release, as the loaders read them.
#[derive(Debug, Clone)]
pub struct ReleaseLayout {
    pub size: ModelSize,
    /// The bf16 checkpoint (`*-dev` / `*-distilled`): DiT, connectors, text projection, VAEs,
    /// vocoder.
    pub checkpoint: Tensors,
    /// The same checkpoint in the layout of the official `*-fp8` files: the block linears
    /// ltx-core's FP8 path quantizes as `F8_E4M3` with 0-d `weight_scale` / `input_scale`.
    pub checkpoint_fp8: Tensors,
    /// The Gemma-3 language model (`language_model.model.*`; the vision tower is never read).
    pub gemma: Tensors,
    /// The x2 spatial upsampler file.
    pub upsampler: Tensors,
}

/// Records every `get` of the wrapped layout; answers presence like the random backend.
struct Recorder {
    layout: RandomBackend,
    seen: Arc<Mutex<Tensors>>,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.layout.contains_tensor(name) {
            candle_core::bail!("layout: `{name}` is not part of this model");
        }
        let entry = TensorEntry {
            dtype: Dtype::BF16,
            shape: s.dims().to_vec(),
        };
        self.seen
            .lock()
            .map_err(|_| candle_core::Error::Msg("layout recorder poisoned".into()))?
            .insert(name.to_string(), entry);
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("layout: `{name}` was requested without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.layout.contains_tensor(name)
    }
}

/// Records the release layout of `size` (the two-stage distilled set of files). `layers`
/// overrides the DiT depth (the FP8 rule quantizes blocks 1-42 of a 48-block DiT).
pub fn release_layout(size: ModelSize, layers: Option<usize>) -> Result<ReleaseLayout, GenError> {
    let opts = RandomModelOptions {
        size,
        layers,
        text_layers: None,
        pipeline: PipelineKind::DistilledTwoStage,
        dtype: DType::BF16,
        seed: 0,
        prompt_cache: false,
        fp8_weights: false,
        quantization: Quantization::None,
        gemma_quantization: GemmaQuantization::None,
    };
    let s = sizes(&opts)?;
    let absent = absent_suffixes(size);
    let seen: [Arc<Mutex<Tensors>>; 3] = Default::default();
    let index = |file: File| match file {
        File::Checkpoint => 0,
        File::Upsampler => 1,
        File::Gemma => 2,
    };
    let vb = |file: File| {
        let names: Option<HashSet<String>> = s.present.as_ref().map(|p| p[index(file)].clone());
        let recorder = Recorder {
            layout: RandomBackend::new(0, names).with_absent(absent),
            seen: seen[index(file)].clone(),
        };
        VarBuilder::from_backend(Box::new(recorder), DType::BF16, Device::Cpu)
    };
    drop(build(&opts, &s, vb)?);
    let take = |i: usize| -> Result<Tensors, GenError> {
        let t = seen[i]
            .lock()
            .map_err(|_| GenError::Model("layout recorder poisoned".into()))?;
        Ok(t.clone())
    };
    let checkpoint = take(0)?;
    Ok(ReleaseLayout {
        size,
        checkpoint_fp8: fp8_twin(&checkpoint),
        checkpoint,
        upsampler: take(1)?,
        gemma: take(2)?,
    })
}

/// `checkpoint` as the official FP8 files store it: every 2-d `.weight` of a layer ltx-core's
/// FP8 path makes an `FP8Linear` is `F8_E4M3`, with f32 0-d `weight_scale` and `input_scale`.
pub fn fp8_twin(checkpoint: &Tensors) -> Tensors {
    let mut out = Tensors::new();
    for (key, t) in checkpoint {
        let layer = key.strip_suffix(".weight");
        match layer {
            Some(layer) if t.shape.len() == 2 && fp8_scaled_mm_layer(layer) => {
                out.insert(
                    key.clone(),
                    TensorEntry {
                        dtype: Dtype::F8_E4M3,
                        shape: t.shape.clone(),
                    },
                );
                for scale in ["weight_scale", "input_scale"] {
                    let entry = TensorEntry {
                        dtype: Dtype::F32,
                        shape: vec![],
                    };
                    out.insert(format!("{layer}.{scale}"), entry);
                }
            }
            _ => {
                out.insert(key.clone(), t.clone());
            }
        }
    }
    out
}
