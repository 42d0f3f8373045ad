//! Parity of the text path with ltx-core 1.0.0 / HF transformers: tokenizer, Gemma-3 hidden
//! states, FeatureExtractorV1, the two embeddings connectors, the whole `TextEncoder` and its
//! prompt cache. Every prompt present in a golden file is checked; sizes come from the files.

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::read_config;
use ltx2_model::golden::{weights_path, Golden, Tolerance};
use ltx2_model::text::{
    ConnectorConfig, ConnectorKind, Embeddings1DConnector, FeatureExtractorConfig,
    FeatureExtractorV1, Gemma3TextModel, GemmaResidency, GemmaTokenizer, TextEncoder,
    TextEncoderOptions,
};

fn device() -> Device {
    ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE")
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

fn prompt_text(tok_golden: &Golden, name: &str) -> Result<String> {
    let bytes = tok_golden
        .get(&format!("in.{name}.utf8"))?
        .to_vec1::<u8>()?;
    Ok(String::from_utf8(bytes)?)
}

/// Compares `ours` with `reference` (a slice of the golden tensor `key`, e.g. its valid tokens)
/// under the tolerance the set gives for `key`.
fn check_slice(g: &Golden, key: &str, ours: &Tensor, reference: &Tensor) -> Result<()> {
    let report = g.compare_part(key, &format!("{key}[valid tokens]"), ours, reference)?;
    ensure!(report.passed, "{report}");
    Ok(())
}

fn gemma() -> Result<Gemma3TextModel> {
    Ok(Gemma3TextModel::from_folder(
        &weights_path("gemma"),
        DType::F32,
        &device(),
    )?)
}

fn feature_extractor(gemma: &Gemma3TextModel) -> Result<FeatureExtractorV1> {
    let cfg = FeatureExtractorConfig {
        hidden_size: gemma.config().hidden_size,
        num_hidden_states: gemma.config().num_hidden_states(),
    };
    let path = weights_path("model.safetensors");
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &device())? };
    Ok(FeatureExtractorV1::new(
        cfg,
        vb.pp("text_embedding_projection"),
    )?)
}

fn connectors() -> Result<(Embeddings1DConnector, Embeddings1DConnector)> {
    let path = weights_path("model.safetensors");
    let config = read_config(&path)?.context("checkpoint has no config metadata")?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &device())? };
    let load = |kind: ConnectorKind| -> Result<Embeddings1DConnector> {
        let cfg = ConnectorConfig::from_checkpoint_config(&config, kind)?;
        Ok(Embeddings1DConnector::new(
            &cfg,
            vb.pp(kind.checkpoint_prefix()),
        )?)
    };
    Ok((load(ConnectorKind::Video)?, load(ConnectorKind::Audio)?))
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

#[test]
fn tokenizer_ids_and_masks_are_exact() -> Result<()> {
    let g = Golden::load("tokenizer")?;
    for name in prompt_names(&g, "in.", ".utf8") {
        let text = prompt_text(&g, &name)?;
        let ids_key = format!("out.{name}.input_ids");
        let max_length = g.get(&ids_key)?.dim(1)?;
        let tok = GemmaTokenizer::from_folder(&weights_path("gemma"), max_length)?;
        let (ids, mask) = tok.encode(&text)?.to_tensors(&device())?;
        g.check(&ids_key, &ids)?;
        g.check(&format!("out.{name}.attention_mask"), &mask)?;
    }
    Ok(())
}

#[test]
fn gemma_rope_tables_match() -> Result<()> {
    use ltx2_model::text::gemma3::RopeTable;
    let g = Golden::load("text_encoder")?;
    let cfg = gemma()?.config().clone();
    for name in prompt_names(&g, "dbg.", ".rope_global_cos") {
        let t = g.get(&format!("dbg.{name}.rope_global_cos"))?.dim(1)?;
        let factor = cfg.rope_scaling.as_ref().map(|s| s.factor);
        for (kind, theta, factor) in [
            ("global", cfg.rope_theta, factor),
            ("local", cfg.rope_local_base_freq, None),
        ] {
            let table = RopeTable::new(theta, factor, cfg.head_dim, 0, t, DType::F32, &device())?;
            // HF stores cat(f, f) over the full head_dim.
            let cos = Tensor::cat(&[&table.cos, &table.cos], 1)?.unsqueeze(0)?;
            let sin = Tensor::cat(&[&table.sin, &table.sin], 1)?.unsqueeze(0)?;
            g.check(&format!("dbg.{name}.rope_{kind}_cos"), &cos)?;
            g.check(&format!("dbg.{name}.rope_{kind}_sin"), &sin)?;
        }
    }
    Ok(())
}

#[test]
fn gemma_hidden_states_match_on_valid_tokens() -> Result<()> {
    let g = Golden::load("text_encoder")?;
    let model = gemma()?;
    for name in prompt_names(&g, "in.", ".input_ids") {
        let (ids, mask, pad) = encoder_inputs(&g, &name)?;
        let key = format!("out.{name}.hidden_states");
        let n = ids.dim(1)? - pad;
        let reference = g.get_f32(&key, &device())?.narrow(2, pad, n)?;
        // Only the valid tokens, at their padded positions (what TextEncoder runs)...
        let states = model.forward(&ids.narrow(1, pad, n)?, None, pad)?;
        check_slice(&g, &key, &Tensor::stack(&states, 0)?, &reference)?;
        // ...and the whole padded sequence with the padding mask (HF's own computation).
        let states = model.forward(&ids, Some(&mask), 0)?;
        let valid: Vec<Tensor> = states
            .iter()
            .map(|s| s.narrow(1, pad, n))
            .collect::<candle_core::Result<_>>()?;
        check_slice(&g, &key, &Tensor::stack(&valid, 0)?, &reference)?;
    }
    Ok(())
}

#[test]
fn feature_extractor_matches() -> Result<()> {
    let g = Golden::load("text_encoder")?;
    let model = gemma()?;
    let fe = feature_extractor(&model)?;
    for name in prompt_names(&g, "in.", ".input_ids") {
        let (_, mask, _) = encoder_inputs(&g, &name)?;
        let states = g.get_f32(&format!("out.{name}.hidden_states"), &device())?;
        let states: Vec<Tensor> = (0..states.dim(0)?)
            .map(|l| states.get(l))
            .collect::<candle_core::Result<_>>()?;
        let dbg_key = format!("dbg.{name}.aggregate_embed_in");
        if g.has(&dbg_key) {
            g.check(&dbg_key, &fe.normalize(&states, &mask)?)?;
        }
        g.check(
            &format!("out.{name}.features"),
            &fe.forward(&states, &mask)?,
        )?;
    }
    Ok(())
}

#[test]
fn connector_feature_extractor_matches() -> Result<()> {
    let g = Golden::load("connector")?;
    let model = gemma()?;
    let fe = feature_extractor(&model)?;
    let mask = g.get("in.attention_mask")?;
    let count = g.keys_with_prefix("in.hidden_state.").len();
    let states: Vec<Tensor> = (0..count)
        .map(|i| g.get_f32(&format!("in.hidden_state.{i}"), &device()))
        .collect::<candle_core::Result<_>>()?;
    g.check("dbg.aggregate_embed_in", &fe.normalize(&states, &mask)?)?;
    g.check("dbg.aggregate_embed_out", &fe.forward(&states, &mask)?)
        .context("features")?;
    Ok(())
}

#[test]
fn connector_golden_matches() -> Result<()> {
    let g = Golden::load("connector")?;
    let fe = feature_extractor(&gemma()?)?;
    let (video, audio) = connectors()?;
    let mask = g.get("in.attention_mask")?;
    let count = g.keys_with_prefix("in.hidden_state.").len();
    let states: Vec<Tensor> = (0..count)
        .map(|i| g.get_f32(&format!("in.hidden_state.{i}"), &device()))
        .collect::<candle_core::Result<_>>()?;
    let features = fe.forward(&states, &mask)?;
    g.check(
        "dbg.video_connector.block0_in",
        &video.registers_applied(&features, &mask)?,
    )?;
    g.check("out.video_encoding", &video.forward(&features, &mask)?)?;
    g.check("out.audio_encoding", &audio.forward(&features, &mask)?)?;
    // Registers count as valid tokens: the processor's output mask is all ones.
    g.check(
        "out.attention_mask",
        &Tensor::ones(mask.dims(), DType::I64, &device())?,
    )?;
    Ok(())
}

/// Gemma -> features -> connectors from the golden token ids, for every prompt of the file, through
/// both the padded (ltx-core) and the compact (TextEncoder) connector paths.
#[test]
fn text_encoder_components_match_for_every_prompt() -> Result<()> {
    let g = Golden::load("text_encoder")?;
    let model = gemma()?;
    let fe = feature_extractor(&model)?;
    let (video, audio) = connectors()?;
    for name in prompt_names(&g, "in.", ".input_ids") {
        let (ids, mask, pad) = encoder_inputs(&g, &name)?;
        let (t, n) = (ids.dim(1)?, ids.dim(1)? - pad);
        // Padded path: every state on the whole padded sequence.
        let states = model.forward(&ids, Some(&mask), 0)?;
        let features = fe.forward(&states, &mask)?;
        g.check(&format!("out.{name}.features"), &features)?;
        g.check(
            &format!("out.{name}.video_encoding"),
            &video.forward(&features, &mask)?,
        )?;
        g.check(
            &format!("out.{name}.audio_encoding"),
            &audio.forward(&features, &mask)?,
        )?;
        g.check(
            &format!("out.{name}.attention_mask"),
            &Tensor::ones((1, t), DType::I64, &device())?,
        )?;
        // Compact path: valid tokens only.
        let states = model.forward(&ids.narrow(1, pad, n)?, None, pad)?;
        let features = fe.forward(&states, &Tensor::ones((1, n), DType::U32, &device())?)?;
        g.check(
            &format!("out.{name}.video_encoding"),
            &video.forward_compact(&features, t)?,
        )?;
        g.check(
            &format!("out.{name}.audio_encoding"),
            &audio.forward_compact(&features, t)?,
        )?;
    }
    Ok(())
}

fn text_encoder(max_length: usize, cache_capacity: usize) -> Result<TextEncoder> {
    let opts = TextEncoderOptions {
        max_length,
        cache_capacity,
        ..TextEncoderOptions::default()
    };
    Ok(TextEncoder::load(
        &weights_path("gemma"),
        &weights_path("model.safetensors"),
        &opts,
        DType::F32,
        &device(),
    )?)
}

/// The whole `TextEncoder::encode` from the prompt text, for every text_encoder prompt whose text
/// is in the tokenizer golden (the generator used the same prompts for both files).
#[test]
fn text_encoder_encode_matches_from_prompt_text() -> Result<()> {
    let g = Golden::load("text_encoder")?;
    let tok_golden = Golden::load("tokenizer")?;
    let names = prompt_names(&g, "in.", ".input_ids");
    let max_length = g.get(&format!("in.{}.input_ids", names[0]))?.dim(1)?;
    let encoder = text_encoder(max_length, 8)?;
    let mut checked = 0;
    for name in names {
        if !tok_golden.has(&format!("in.{name}.utf8")) {
            continue;
        }
        let text = prompt_text(&tok_golden, &name)?;
        let tokens = encoder.tokenizer().encode(&text)?;
        let (ids, _) = tokens.to_tensors(&device())?;
        g.check(&format!("in.{name}.input_ids"), &ids)
            .context("tokenizer vs text_encoder ids")?;
        let out = encoder.encode(&text)?;
        g.check(&format!("out.{name}.video_encoding"), &out.video_context)?;
        g.check(&format!("out.{name}.audio_encoding"), &out.audio_context)?;
        ensure!(out.num_tokens == tokens.num_valid());
        checked += 1;
    }
    ensure!(
        checked > 0,
        "no text_encoder prompt has its text in the tokenizer golden"
    );
    Ok(())
}

#[test]
fn repeated_prompt_is_served_from_the_cache() -> Result<()> {
    let g = Golden::load("tokenizer")?;
    let name = &prompt_names(&g, "in.", ".utf8")[0];
    let text = prompt_text(&g, name)?;
    let max_length = g.get(&format!("out.{name}.input_ids"))?.dim(1)?;
    let encoder = text_encoder(max_length, 4)?;
    let first = encoder.encode(&text)?;
    let after_first = encoder.cache_stats();
    ensure!(
        (after_first.hits, after_first.misses, after_first.len) == (0, 1, 1),
        "{after_first:?}"
    );
    let second = encoder.encode(&text)?;
    let after_second = encoder.cache_stats();
    ensure!(
        (after_second.hits, after_second.misses) == (1, 1),
        "{after_second:?}"
    );
    for (a, b) in [
        (&first.video_context, &second.video_context),
        (&first.audio_context, &second.audio_context),
    ] {
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        ensure!(diff == 0.0, "cached tensors differ by {diff}");
    }
    // A different prompt is a miss, and the cached value equals a fresh encode.
    encoder.encode(&format!("{text} again"))?;
    ensure!(encoder.cache_stats().misses == 2);
    let fresh = encoder.encode_uncached(&text)?;
    let diff = (&fresh.video_context - &second.video_context)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    ensure!(
        diff == 0.0,
        "cached value differs from a fresh encode by {diff}"
    );
    Ok(())
}

/// The same code in bfloat16 (the production dtype): runs end to end and stays near the float32
/// reference. bf16 carries ~3 significant digits, so this bound is about catching dtype bugs
/// (a wrong cast or a silently f32-only op), not about parity.
#[test]
fn text_encoder_runs_in_bf16() -> Result<()> {
    let g = Golden::load("text_encoder")?;
    let tok_golden = Golden::load("tokenizer")?;
    let name = prompt_names(&g, "in.", ".input_ids")
        .into_iter()
        .find(|n| tok_golden.has(&format!("in.{n}.utf8")))
        .context("no prompt text")?;
    let max_length = g.get(&format!("in.{name}.input_ids"))?.dim(1)?;
    let opts = TextEncoderOptions {
        max_length,
        cache_capacity: 0,
        ..TextEncoderOptions::default()
    };
    let encoder = TextEncoder::load(
        &weights_path("gemma"),
        &weights_path("model.safetensors"),
        &opts,
        DType::BF16,
        &device(),
    )?;
    let out = encoder.encode(&prompt_text(&tok_golden, &name)?)?;
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

/// Loading Gemma per cache miss gives the same contexts as keeping it resident.
#[test]
fn on_demand_gemma_matches_resident() -> Result<()> {
    let g = Golden::load("tokenizer")?;
    let name = &prompt_names(&g, "in.", ".utf8")[0];
    let text = prompt_text(&g, name)?;
    let max_length = g.get(&format!("out.{name}.input_ids"))?.dim(1)?;
    let resident = text_encoder(max_length, 0)?.encode(&text)?;
    let opts = TextEncoderOptions {
        max_length,
        cache_capacity: 0,
        gemma_residency: GemmaResidency::OnDemand,
        ..Default::default()
    };
    let on_demand = TextEncoder::load(
        &weights_path("gemma"),
        &weights_path("model.safetensors"),
        &opts,
        DType::F32,
        &device(),
    )?
    .encode(&text)?;
    let diff = (&resident.video_context - &on_demand.video_context)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    ensure!(diff == 0.0, "on-demand differs by {diff}");
    Ok(())
}
