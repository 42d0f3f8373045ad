//! Parity of the LTX-2.3 text path with ltx-core 1.0.0 (golden set `GoldenSet::Ltx23`): the
//! checkpoint config selects FeatureExtractorV2 and gated connectors at the DiT's widths; the
//! tokenizer, Gemma-3 hidden states, V2 features, both connectors and the whole `TextEncoder` are
//! checked for every prompt of the files. Sizes, prompts and widths come from the set itself.

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::read_config;
use ltx2_model::golden::{Golden, GoldenSet, Tolerance};
use ltx2_model::text::feature_extractor::Stream;
use ltx2_model::text::{
    ConnectorConfig, ConnectorKind, Embeddings1DConnector, FeatureExtractor,
    FeatureExtractorConfig, FeatureExtractorV2, FeatureExtractorVariant, Gemma3TextModel,
    GemmaTokenizer, TextEncoder, TextEncoderOptions,
};

const SET: GoldenSet = GoldenSet::Ltx23;

fn device() -> Device {
    ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE")
}

fn golden(name: &str) -> Result<Golden> {
    Ok(SET.load(name)?)
}

fn checkpoint_config() -> Result<serde_json::Value> {
    read_config(&SET.weights_path("model.safetensors"))?
        .context("2.3 checkpoint has no config metadata")
}

fn checkpoint_vb(dtype: DType) -> Result<VarBuilder<'static>> {
    let path = SET.weights_path("model.safetensors");
    // SAFETY: the vendored golden weights are not modified while the test runs.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &device())? })
}

/// `promptN` names of the keys `<prefix>promptN<suffix>`, sorted.
fn prompt_names(g: &Golden, prefix: &str, suffix: &str) -> Vec<String> {
    let names: Vec<String> = g
        .keys_with_prefix(prefix)
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .strip_suffix(suffix)
                .map(str::to_string)
        })
        .collect();
    assert!(
        !names.is_empty(),
        "golden {} has no `{prefix}*{suffix}` keys",
        g.name()
    );
    names
}

/// `(promptN, text)` for every prompt of the text_encoder golden: the texts are the JSON list in
/// the file's `info.prompts` metadata, `promptN` being the N-th entry.
fn prompts(g: &Golden) -> Result<Vec<(String, String)>> {
    let info = g
        .info()
        .context("text_encoder golden has no info metadata")?;
    let list = info
        .get("prompts")
        .and_then(|p| p.as_str())
        .context("info has no `prompts` string")?;
    let texts: Vec<String> = serde_json::from_str(list).context("info.prompts")?;
    let names = prompt_names(g, "in.", ".input_ids");
    ensure!(
        names.len() == texts.len(),
        "{} prompt texts for {} promptN inputs",
        texts.len(),
        names.len()
    );
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| (format!("prompt{i}"), text))
        .collect())
}

/// Compares `ours` with `reference` (a slice of the golden tensor `key`, e.g. its valid tokens)
/// under the tolerance the set gives for `key`.
fn check_slice(g: &Golden, key: &str, ours: &Tensor, reference: &Tensor) -> Result<()> {
    let report = g.compare_part(key, &format!("{key}[valid tokens]"), ours, reference)?;
    ensure!(report.passed, "{report}");
    Ok(())
}

/// Collects the failures of many comparisons so that one run prints every error, then fails.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn record(&mut self, what: &str, r: Result<()>) {
        if let Err(e) = r {
            self.0.push(format!("{what}: {e:#}"));
        }
    }

    fn check(&mut self, g: &Golden, key: &str, ours: &Tensor) {
        let r = g.check(key, ours).map(|_| ()).map_err(anyhow::Error::from);
        self.record(key, r);
    }

    fn finish(self) -> Result<()> {
        ensure!(self.0.is_empty(), "parity failures:\n{}", self.0.join("\n"));
        Ok(())
    }
}

fn gemma() -> Result<Gemma3TextModel> {
    Ok(Gemma3TextModel::from_folder(
        &SET.weights_path("gemma"),
        DType::F32,
        &device(),
    )?)
}

fn geometry(gemma: &Gemma3TextModel) -> FeatureExtractorConfig {
    FeatureExtractorConfig {
        hidden_size: gemma.config().hidden_size,
        num_hidden_states: gemma.config().num_hidden_states(),
    }
}

/// The extractor the checkpoint config selects; the 2.3 set must select V2.
fn feature_extractor(gemma: &Gemma3TextModel) -> Result<FeatureExtractorV2> {
    let variant =
        FeatureExtractorVariant::from_checkpoint_config(&checkpoint_config()?, geometry(gemma))?;
    let FeatureExtractorVariant::V2(cfg) = variant else {
        anyhow::bail!("the 2.3 checkpoint config selected {}", variant.name());
    };
    Ok(FeatureExtractorV2::new(
        cfg,
        checkpoint_vb(DType::F32)?.pp("text_embedding_projection"),
    )?)
}

fn connectors() -> Result<(Embeddings1DConnector, Embeddings1DConnector)> {
    let config = checkpoint_config()?;
    let vb = checkpoint_vb(DType::F32)?;
    let load = |kind: ConnectorKind| -> Result<Embeddings1DConnector> {
        let cfg = ConnectorConfig::from_checkpoint_config(&config, kind)?;
        Ok(Embeddings1DConnector::new(
            &cfg,
            vb.pp(kind.checkpoint_prefix()),
        )?)
    };
    Ok((load(ConnectorKind::Video)?, load(ConnectorKind::Audio)?))
}

/// The connector golden's Gemma states and mask.
fn connector_inputs(g: &Golden) -> Result<(Vec<Tensor>, Tensor)> {
    let count = g.keys_with_prefix("in.hidden_state.").len();
    ensure!(count > 0, "connector golden has no in.hidden_state.*");
    let states = (0..count)
        .map(|i| g.get_f32(&format!("in.hidden_state.{i}"), &device()))
        .collect::<candle_core::Result<_>>()?;
    Ok((states, g.get("in.attention_mask")?.to_device(&device())?))
}

/// `(input_ids, attention_mask, pad)` of a text_encoder prompt.
fn encoder_inputs(g: &Golden, name: &str) -> Result<(Tensor, Tensor, usize)> {
    let ids = g
        .get(&format!("in.{name}.input_ids"))?
        .to_device(&device())?;
    let mask = g
        .get(&format!("in.{name}.attention_mask"))?
        .to_device(&device())?;
    let n = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()? as usize;
    let pad = ids.dim(1)? - n;
    Ok((ids, mask, pad))
}

/// The config flags and widths the set documents (`configs/connector.json`) are what the
/// checkpoint config makes us build.
#[test]
fn checkpoint_config_selects_v2_and_gated_connectors() -> Result<()> {
    let documented = SET.config_json("connector.json")?;
    let c = &documented["connector"];
    let field = |key: &str| -> Result<usize> {
        c[key]
            .as_u64()
            .map(|v| v as usize)
            .with_context(|| format!("connector.json: connector.{key}"))
    };
    let model = gemma()?;
    let fe = feature_extractor(&model)?.config();
    let (video, audio) = connectors()?;
    for (connector, heads, head_dim, width) in [
        (
            &video,
            field("num_attention_heads")?,
            field("attention_head_dim")?,
            fe.video_inner_dim,
        ),
        (
            &audio,
            field("audio_num_attention_heads")?,
            field("audio_attention_head_dim")?,
            fe.audio_inner_dim,
        ),
    ] {
        let cfg = connector.config();
        ensure!(
            (cfg.num_attention_heads, cfg.attention_head_dim) == (heads, head_dim),
            "{cfg:?}"
        );
        ensure!(cfg.num_layers == field("num_layers")?, "{cfg:?}");
        ensure!(
            cfg.apply_gated_attention == c["apply_gated_attention"].as_bool().unwrap_or(false),
            "{cfg:?}"
        );
        ensure!(
            cfg.inner_dim() == width,
            "connector {cfg:?} vs features {width}"
        );
    }
    // The feature widths are the DiT's inner widths.
    let t = &checkpoint_config()?["transformer"];
    let dim = |a: &str, b: &str| t[a].as_u64().unwrap_or(0) * t[b].as_u64().unwrap_or(0);
    ensure!(fe.video_inner_dim as u64 == dim("num_attention_heads", "attention_head_dim"));
    ensure!(
        fe.audio_inner_dim as u64 == dim("audio_num_attention_heads", "audio_attention_head_dim")
    );
    Ok(())
}

#[test]
fn connector_feature_extractor_v2_matches() -> Result<()> {
    let g = golden("connector")?;
    let fe = feature_extractor(&gemma()?)?;
    let (states, mask) = connector_inputs(&g)?;
    let normed = fe.normalize(&states, &mask)?;
    let (video, audio) = fe.forward(&states, &mask)?;
    let mut failures = Failures::default();
    for (stream, name, out) in [
        (Stream::Video, "video", &video),
        (Stream::Audio, "audio", &audio),
    ] {
        failures.check(
            &g,
            &format!("dbg.{name}_aggregate_embed_in"),
            &fe.aggregate_embed_input(&normed, stream)?,
        );
        failures.check(&g, &format!("dbg.{name}_aggregate_embed_out"), out);
    }
    failures.finish()
}

#[test]
fn connector_golden_matches() -> Result<()> {
    let g = golden("connector")?;
    let model = gemma()?;
    let fe = FeatureExtractor::V2(feature_extractor(&model)?);
    let (video, audio) = connectors()?;
    let (states, mask) = connector_inputs(&g)?;
    let features = fe.forward(&states, &mask)?;
    let mut failures = Failures::default();
    for (name, connector, input) in [
        ("video", &video, &features.video),
        ("audio", &audio, &features.audio),
    ] {
        let block0_in = connector.registers_applied(input, &mask)?;
        failures.check(&g, &format!("dbg.{name}_connector.block0_in"), &block0_in);
        // Block 0 from the golden's own input, so a block error is not hidden by an upstream one.
        let reference_in = g.get_f32(&format!("dbg.{name}_connector.block0_in"), &device())?;
        failures.check(
            &g,
            &format!("dbg.{name}_connector.block0_out"),
            &connector.block_forward(0, &reference_in)?,
        );
        failures.check(
            &g,
            &format!("out.{name}_encoding"),
            &connector.forward(input, &mask)?,
        );
    }
    // Registers count as valid tokens: the processor's output mask is all ones.
    failures.check(
        &g,
        "out.attention_mask",
        &Tensor::ones(mask.dims(), DType::I64, &device())?,
    );
    // The TextEncoder path: only the valid tokens through the extractor, then the compact
    // connector input (V2 is per token, so this must give the padded result).
    let (b, t) = mask.dims2()?;
    ensure!(b == 1, "the compact path is per prompt");
    let valid: Vec<u32> = mask
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .enumerate()
        .filter(|(_, &m)| m != 0.0)
        .map(|(i, _)| i as u32)
        .collect();
    let n = valid.len();
    let idx = Tensor::from_vec(valid, n, &device())?;
    let compact: Vec<Tensor> = states
        .iter()
        .map(|s| s.index_select(&idx, 1))
        .collect::<candle_core::Result<_>>()?;
    let features = fe.forward(&compact, &Tensor::ones((1, n), DType::U32, &device())?)?;
    failures.check(
        &g,
        "out.video_encoding",
        &video.forward_compact(&features.video, t)?,
    );
    failures.check(
        &g,
        "out.audio_encoding",
        &audio.forward_compact(&features.audio, t)?,
    );
    failures.finish()
}

#[test]
fn tokenizer_ids_and_masks_are_exact() -> Result<()> {
    let g = golden("text_encoder")?;
    let mut failures = Failures::default();
    for (name, text) in prompts(&g)? {
        let ids_key = format!("in.{name}.input_ids");
        let max_length = g.get(&ids_key)?.dim(1)?;
        let tok = GemmaTokenizer::from_folder(&SET.weights_path("gemma"), max_length)?;
        let (ids, mask) = tok.encode(&text)?.to_tensors(&device())?;
        failures.check(&g, &ids_key, &ids);
        failures.check(&g, &format!("in.{name}.attention_mask"), &mask);
    }
    failures.finish()
}

#[test]
fn gemma_hidden_states_match_on_valid_tokens() -> Result<()> {
    let g = golden("text_encoder")?;
    let model = gemma()?;
    let mut failures = Failures::default();
    for name in prompt_names(&g, "in.", ".input_ids") {
        let (ids, mask, pad) = encoder_inputs(&g, &name)?;
        let key = format!("out.{name}.hidden_states");
        let n = ids.dim(1)? - pad;
        let reference = g.get_f32(&key, &device())?.narrow(2, pad, n)?;
        // Only the valid tokens, at their padded positions (what TextEncoder runs)...
        let states = model.forward(&ids.narrow(1, pad, n)?, None, pad)?;
        failures.record(
            &key,
            check_slice(&g, &key, &Tensor::stack(&states, 0)?, &reference),
        );
        // ...and the whole padded sequence with the padding mask (HF's own computation).
        let states = model.forward(&ids, Some(&mask), 0)?;
        let valid: Vec<Tensor> = states
            .iter()
            .map(|s| s.narrow(1, pad, n))
            .collect::<candle_core::Result<_>>()?;
        failures.record(
            &key,
            check_slice(&g, &key, &Tensor::stack(&valid, 0)?, &reference),
        );
    }
    failures.finish()
}

/// Gemma -> V2 features -> connectors from the golden token ids, for every prompt of the file,
/// through both the padded (ltx-core) and the compact (TextEncoder) paths.
#[test]
fn text_encoder_components_match_for_every_prompt() -> Result<()> {
    let g = golden("text_encoder")?;
    let model = gemma()?;
    let fe = FeatureExtractor::V2(feature_extractor(&model)?);
    let (video, audio) = connectors()?;
    let mut failures = Failures::default();
    for name in prompt_names(&g, "in.", ".input_ids") {
        let (ids, mask, pad) = encoder_inputs(&g, &name)?;
        let (t, n) = (ids.dim(1)?, ids.dim(1)? - pad);
        // Padded path: every state on the whole padded sequence.
        let states = model.forward(&ids, Some(&mask), 0)?;
        let features = fe.forward(&states, &mask)?;
        failures.check(&g, &format!("out.{name}.video_features"), &features.video);
        failures.check(&g, &format!("out.{name}.audio_features"), &features.audio);
        failures.check(
            &g,
            &format!("out.{name}.video_encoding"),
            &video.forward(&features.video, &mask)?,
        );
        failures.check(
            &g,
            &format!("out.{name}.audio_encoding"),
            &audio.forward(&features.audio, &mask)?,
        );
        failures.check(
            &g,
            &format!("out.{name}.attention_mask"),
            &Tensor::ones((1, t), DType::I64, &device())?,
        );
        // Compact path: valid tokens only.
        let states = model.forward(&ids.narrow(1, pad, n)?, None, pad)?;
        let features = fe.forward(&states, &Tensor::ones((1, n), DType::U32, &device())?)?;
        for (stream, ours) in [("video", &features.video), ("audio", &features.audio)] {
            let key = format!("out.{name}.{stream}_features");
            let reference = g.get_f32(&key, &device())?.narrow(1, pad, n)?;
            failures.record(&key, check_slice(&g, &key, ours, &reference));
        }
        failures.check(
            &g,
            &format!("out.{name}.video_encoding"),
            &video.forward_compact(&features.video, t)?,
        );
        failures.check(
            &g,
            &format!("out.{name}.audio_encoding"),
            &audio.forward_compact(&features.audio, t)?,
        );
    }
    failures.finish()
}

fn text_encoder(max_length: usize, cache_capacity: usize, dtype: DType) -> Result<TextEncoder> {
    let opts = TextEncoderOptions {
        max_length,
        cache_capacity,
        ..TextEncoderOptions::default()
    };
    Ok(TextEncoder::load(
        &SET.weights_path("gemma"),
        &SET.weights_path("model.safetensors"),
        &opts,
        dtype,
        &device(),
    )?)
}

fn max_length(g: &Golden) -> Result<usize> {
    let name = &prompt_names(g, "in.", ".input_ids")[0];
    Ok(g.get(&format!("in.{name}.input_ids"))?.dim(1)?)
}

/// The whole `TextEncoder::load` + `encode` from the prompt text, for every prompt.
#[test]
fn text_encoder_encode_matches_from_prompt_text() -> Result<()> {
    let g = golden("text_encoder")?;
    let encoder = text_encoder(max_length(&g)?, 8, DType::F32)?;
    ensure!(
        matches!(encoder.feature_extractor(), FeatureExtractor::V2(_)),
        "TextEncoder::load did not select FeatureExtractorV2 for the 2.3 checkpoint"
    );
    let mut failures = Failures::default();
    for (name, text) in prompts(&g)? {
        let tokens = encoder.tokenizer().encode(&text)?;
        let (ids, _) = tokens.to_tensors(&device())?;
        failures.check(&g, &format!("in.{name}.input_ids"), &ids);
        let out = encoder.encode(&text)?;
        failures.check(
            &g,
            &format!("out.{name}.video_encoding"),
            &out.video_context,
        );
        failures.check(
            &g,
            &format!("out.{name}.audio_encoding"),
            &out.audio_context,
        );
        failures.record(
            &format!("{name} num_tokens"),
            (|| {
                ensure!(out.num_tokens == tokens.num_valid());
                Ok(())
            })(),
        );
    }
    failures.finish()
}

#[test]
fn repeated_prompt_is_served_from_the_cache() -> Result<()> {
    let g = golden("text_encoder")?;
    let (_, text) = prompts(&g)?.swap_remove(0);
    let encoder = text_encoder(max_length(&g)?, 4, DType::F32)?;
    let first = encoder.encode(&text)?;
    let second = encoder.encode(&text)?;
    let stats = encoder.cache_stats();
    ensure!((stats.hits, stats.misses) == (1, 1), "{stats:?}");
    let fresh = encoder.encode_uncached(&text)?;
    for (a, b) in [
        (&first.video_context, &second.video_context),
        (&first.audio_context, &second.audio_context),
        (&fresh.video_context, &second.video_context),
        (&fresh.audio_context, &second.audio_context),
    ] {
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        ensure!(diff == 0.0, "cached / fresh contexts differ by {diff}");
    }
    Ok(())
}

/// The same code in bfloat16 (the production dtype, with ltx-core's bf16 roundings of V2): runs end
/// to end and stays near the float32 reference. bf16 carries ~3 significant digits, so this bound
/// is about catching dtype bugs (a wrong cast or an f32-only op), not about parity.
#[test]
fn text_encoder_runs_in_bf16() -> Result<()> {
    let g = golden("text_encoder")?;
    let (name, text) = prompts(&g)?.swap_remove(0);
    let encoder = text_encoder(max_length(&g)?, 0, DType::BF16)?;
    let out = encoder.encode(&text)?;
    ensure!(out.video_context.dtype() == DType::BF16);
    for (key, ours) in [
        ("video_encoding", &out.video_context),
        ("audio_encoding", &out.audio_context),
    ] {
        let key = format!("out.{name}.{key}");
        let report = g.compare_with(&key, &ours.to_dtype(DType::F32)?, Tolerance::RelL2(5e-2))?;
        ensure!(report.passed, "{report}");
    }
    Ok(())
}
