//! Parity of the LTX-2.5 text path with ltx-core 1.2.0 (golden set `GoldenSet::Ltx25`, or
//! `$LTX2_GOLDEN_25_DIR`): the packed Gemma-4 text-encoder file (tokenizer from its bytes, Gemma-4
//! text tower, `text_embedding_projection`) and the transformer file (connectors, config,
//! `gemma_source_checkpoint`) through the split loader. Every prompt of the `text_encoder` golden is
//! checked: ids and masks exactly, the hidden states on the valid tokens, the V2 features, both
//! encodings and the connector mask. File paths come from the set's `manifest.json`, sizes and
//! prompts from the golden itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::read_config;
use ltx2_model::golden::{Checks, Golden, GoldenSet};
use ltx2_model::text::{
    ConnectorConfig, ConnectorKind, Embeddings1DConnector, FeatureExtractor,
    FeatureExtractorConfig, FeatureExtractorV2, FeatureExtractorVariant, Gemma4TextModel,
    GemmaAssets, GemmaResidency, TextEncoder, TextEncoderOptions,
};

const SET: GoldenSet = GoldenSet::Ltx25;

fn device() -> Device {
    ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE")
}

/// A weight file of the set, by its `manifest.json` `weights` entry.
fn weights(entry: &str) -> Result<PathBuf> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(SET.dir().join("manifest.json")).context("manifest.json")?,
    )?;
    let rel = manifest["weights"][entry]
        .as_str()
        .with_context(|| format!("manifest.json has no weights.{entry}"))?;
    Ok(SET.dir().join(rel))
}

fn text_file() -> Result<PathBuf> {
    weights("text_encoder")
}

fn transformer_file() -> Result<PathBuf> {
    weights("transformer")
}

/// `(text, prompt index)` for every prompt: `info.prompts`, cross-checked with `in.prompt<i>_utf8`.
fn prompts(g: &Golden) -> Result<Vec<String>> {
    let info = g.info().context("text_encoder golden has no info")?;
    let list = match &info["prompts"] {
        serde_json::Value::String(s) => serde_json::from_str(s)?,
        v => serde_json::from_value::<Vec<String>>(v.clone())?,
    };
    for (i, text) in list.iter().enumerate() {
        let bytes = g.get(&format!("in.prompt{i}_utf8"))?.to_vec1::<u8>()?;
        ensure!(
            bytes == text.as_bytes(),
            "in.prompt{i}_utf8 differs from info.prompts[{i}]"
        );
    }
    ensure!(
        g.keys_with_prefix("in.prompt").len() == list.len(),
        "prompt count"
    );
    Ok(list)
}

fn max_length(g: &Golden) -> Result<usize> {
    Ok(g.get("out.input_ids")?.dim(1)?)
}

fn options(max_length: usize, cache_capacity: usize) -> TextEncoderOptions {
    TextEncoderOptions {
        max_length,
        cache_capacity,
        ..TextEncoderOptions::default()
    }
}

fn gemma(path: &Path, dtype: DType) -> Result<Gemma4TextModel> {
    Ok(Gemma4TextModel::load(
        &GemmaAssets::load(path)?,
        dtype,
        &device(),
    )?)
}

fn geometry(model: &Gemma4TextModel) -> FeatureExtractorConfig {
    FeatureExtractorConfig {
        hidden_size: model.config().hidden_size,
        num_hidden_states: model.config().num_hidden_states(),
    }
}

/// Both split files in one `VarBuilder`, as ltx-core merges them for the embeddings processor.
fn split_vb() -> Result<VarBuilder<'static>> {
    let files = [transformer_file()?, text_file()?];
    // SAFETY: the golden weights are not modified while the test runs.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device())? })
}

/// The feature extractor and connectors the transformer file's config selects (must be V2).
fn processor(
    model: &Gemma4TextModel,
) -> Result<(
    FeatureExtractor,
    Embeddings1DConnector,
    Embeddings1DConnector,
)> {
    let config = read_config(&transformer_file()?)?.context("transformer file has no config")?;
    let variant = FeatureExtractorVariant::from_checkpoint_config(&config, geometry(model))?;
    let FeatureExtractorVariant::V2(cfg) = variant else {
        anyhow::bail!("the 2.5 transformer config selected {}", variant.name());
    };
    let vb = split_vb()?;
    let fe = FeatureExtractorV2::new(cfg, vb.pp("text_embedding_projection"))?;
    let connector = |kind: ConnectorKind| -> Result<Embeddings1DConnector> {
        let cfg = ConnectorConfig::from_checkpoint_config(&config, kind)?;
        Ok(Embeddings1DConnector::new(
            &cfg,
            vb.pp(kind.checkpoint_prefix()),
        )?)
    };
    Ok((
        FeatureExtractor::V2(fe),
        connector(ConnectorKind::Video)?,
        connector(ConnectorKind::Audio)?,
    ))
}

/// Row `p` of a golden tensor, keeping a leading batch axis of 1.
fn row(g: &Golden, key: &str, p: usize) -> Result<Tensor> {
    Ok(g.get(key)?.narrow(0, p, 1)?.to_device(&device())?)
}

/// `(ids (1, T) u32, mask (1, T) u32, pad)` of golden prompt `p`.
fn golden_tokens(g: &Golden, p: usize) -> Result<(Tensor, Tensor, usize)> {
    let ids = row(g, "out.input_ids", p)?.to_dtype(DType::U32)?;
    let mask = row(g, "out.attention_mask", p)?.to_dtype(DType::U32)?;
    let n = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()? as usize;
    Ok((ids.clone(), mask, ids.dim(1)? - n))
}

/// Everything the `text_encoder` golden holds, through the real split-file loaders: the tokenizer
/// from the file's bytes, Gemma-4 on the padded batch row (HF's computation) and on the valid
/// tokens alone (what `TextEncoder` runs), the V2 features, both connectors, the connector mask,
/// and `TextEncoder::load_split` + `encode` from the prompt text.
#[test]
fn text_encoder_golden_matches_through_the_split_loader() -> Result<()> {
    let g = SET.load("text_encoder")?;
    let texts = prompts(&g)?;
    let max_length = max_length(&g)?;
    let assets = GemmaAssets::load(&text_file()?)?;
    let tokenizer = assets.tokenizer(max_length)?;
    let model = gemma(&text_file()?, DType::F32)?;
    let (fe, video, audio) = processor(&model)?;
    let encoder = TextEncoder::load_split(
        &text_file()?,
        &transformer_file()?,
        &options(max_length, 0),
        DType::F32,
        &device(),
    )?;
    ensure!(
        matches!(encoder.feature_extractor(), FeatureExtractor::V2(_)),
        "load_split did not select FeatureExtractorV2"
    );
    let mut checks = Checks::new(&g);
    for key in g.keys_with_prefix("in.") {
        checks.covered(&key);
    }
    let hidden = g.get_f32("out.hidden_states", &device())?;
    for (p, text) in texts.iter().enumerate() {
        let tokens = tokenizer.encode(text)?;
        let (ids, mask) = tokens.to_tensors(&device())?;
        for (key, ours) in [("out.input_ids", &ids), ("out.attention_mask", &mask)] {
            let label = format!("{key}[{p}]");
            checks.check_part(key, &label, ours, &row(&g, key, p)?)?;
        }

        let (ids, mask, pad) = golden_tokens(&g, p)?;
        let t = ids.dim(1)?;
        let n = t - pad;
        let reference = hidden.get(p)?.narrow(1, pad, n)?;
        let padded = model.forward(&ids, Some(&mask), 0)?;
        let valid: Vec<Tensor> = padded
            .iter()
            .map(|s| s.squeeze(0)?.narrow(0, pad, n))
            .collect::<candle_core::Result<_>>()?;
        let label = format!("out.hidden_states[{p}][valid tokens, padded run]");
        checks.check_part(
            "out.hidden_states",
            &label,
            &Tensor::stack(&valid, 0)?,
            &reference,
        )?;
        let compact = model.forward(&ids.narrow(1, pad, n)?, None, pad)?;
        let compact: Vec<Tensor> = compact
            .iter()
            .map(|s| s.squeeze(0))
            .collect::<candle_core::Result<_>>()?;
        let label = format!("out.hidden_states[{p}][valid tokens, compact run]");
        checks.check_part(
            "out.hidden_states",
            &label,
            &Tensor::stack(&compact, 0)?,
            &reference,
        )?;

        let features = fe.forward(&padded, &mask)?;
        if p == 0 {
            checks.check("dbg.video_features", &features.video)?;
            checks.check("dbg.audio_features", &features.audio)?;
        }
        for (key, connector, input) in [
            ("out.video_encoding", &video, &features.video),
            ("out.audio_encoding", &audio, &features.audio),
        ] {
            let label = format!("{key}[{p}]");
            let ours = connector.forward(input, &mask)?;
            checks.check_part(key, &label, &ours, &row(&g, key, p)?)?;
        }
        // Registers fill the padding, so every position of the encodings is valid.
        let ones = Tensor::ones((1, t), DType::I64, &device())?;
        let label = format!("out.connector_mask[{p}]");
        checks.check_part(
            "out.connector_mask",
            &label,
            &ones,
            &row(&g, "out.connector_mask", p)?,
        )?;

        let out = encoder.encode(text)?;
        ensure!(
            out.num_tokens == n,
            "prompt {p}: {} tokens, golden {n}",
            out.num_tokens
        );
        for (key, ours) in [
            ("out.video_encoding", &out.video_context),
            ("out.audio_encoding", &out.audio_context),
        ] {
            let label = format!("{key}[{p}][TextEncoder::load_split + encode]");
            checks.check_part(key, &label, ours, &row(&g, key, p)?)?;
        }
    }
    checks.finish(&["out.", "dbg."])?;
    Ok(())
}

/// The HF Gemma-4 folder the packed file was made from (`weights.gemma_root`) loads through the HF
/// key layout (`model.language_model.*`) to the same model and tokenizer.
#[test]
fn hf_gemma4_folder_matches_the_packed_file() -> Result<()> {
    let g = SET.load("text_encoder")?;
    let root = weights("gemma_root")?;
    let max_length = max_length(&g)?;
    let packed = gemma(&text_file()?, DType::F32)?;
    let folder = gemma(&root, DType::F32)?;
    ensure!(packed.config() == folder.config(), "configs differ");
    let packed_tok = GemmaAssets::load(&text_file()?)?.tokenizer(max_length)?;
    let folder_tok = GemmaAssets::load(&root)?.tokenizer(max_length)?;
    for (p, text) in prompts(&g)?.iter().enumerate() {
        ensure!(
            packed_tok.encode(text)? == folder_tok.encode(text)?,
            "prompt {p}: tokenizers differ"
        );
        let (ids, _, pad) = golden_tokens(&g, p)?;
        let ids = ids.narrow(1, pad, ids.dim(1)? - pad)?;
        for (a, b) in packed
            .forward(&ids, None, pad)?
            .iter()
            .zip(folder.forward(&ids, None, pad)?)
        {
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            ensure!(diff == 0.0, "prompt {p}: states differ by {diff}");
        }
    }
    Ok(())
}

/// Image / video / audio placeholder ids spelled out in a prompt are embedded as `<pad>`
/// (`Gemma4UnifiedModel.forward` without media), not as their own rows.
#[test]
fn multimodal_placeholders_embed_as_pad() -> Result<()> {
    let model = gemma(&text_file()?, DType::F32)?;
    let cfg = model.config();
    let bos = 2u32;
    for &placeholder in &cfg.multimodal_token_ids {
        if placeholder as usize >= cfg.vocab_size {
            continue;
        }
        let with = Tensor::new(&[[bos, 100, placeholder, 101]], &device())?;
        let pad = Tensor::new(&[[bos, 100, cfg.pad_token_id, 101]], &device())?;
        let a = model.forward(&with, None, 0)?;
        let b = model.forward(&pad, None, 0)?;
        let diff = (a.last().unwrap() - b.last().unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        ensure!(diff == 0.0, "placeholder {placeholder}: differs by {diff}");
    }
    Ok(())
}

/// Copies `src` with its safetensors `__metadata__` edited by `edit`.
fn with_metadata(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut HashMap<String, String>),
) -> Result<()> {
    let bytes = std::fs::read(src)?;
    let len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len])?;
    let mut meta: HashMap<String, String> = header
        .get("__metadata__")
        .cloned()
        .map(serde_json::from_value)
        .transpose()?
        .unwrap_or_default();
    edit(&mut meta);
    header.insert("__metadata__".into(), serde_json::to_value(meta)?);
    let mut text = serde_json::to_vec(&header)?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(dst, out)?;
    Ok(())
}

fn load_split_error(transformer: &Path) -> String {
    match TextEncoder::load_split(
        &text_file().unwrap(),
        transformer,
        &options(16, 0),
        DType::F32,
        &Device::Cpu,
    ) {
        Ok(_) => "loaded".into(),
        Err(e) => e.to_string(),
    }
}

/// ltx-core's `_check_gemma_version`: a transformer declaring another Gemma version, or a >= 2.4
/// transformer declaring none, is refused with both sides named.
#[test]
fn mismatched_gemma_version_is_refused() -> Result<()> {
    let src = transformer_file()?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("text_parity_25");
    std::fs::create_dir_all(&dir)?;
    let assets = GemmaAssets::load(&text_file()?)?;
    let ours = assets
        .gemma_version()
        .context("the 2.5 Gemma config has a gemma_version")?
        .to_string();

    let other = dir.join("other_version.safetensors");
    with_metadata(&src, &other, |m| {
        m.insert(
            "gemma_source_checkpoint".into(),
            r#"{"gemma_version": "gemma4-27b-ltx-v9"}"#.into(),
        );
    })?;
    let msg = load_split_error(&other);
    ensure!(
        msg.contains("gemma4-27b-ltx-v9") && msg.contains(&ours) && msg.contains("mismatch"),
        "{msg}"
    );

    let undeclared = dir.join("undeclared.safetensors");
    with_metadata(&src, &undeclared, |m| {
        m.remove("gemma_source_checkpoint");
    })?;
    let msg = load_split_error(&undeclared);
    ensure!(
        msg.contains("must declare gemma_source_checkpoint"),
        "{msg}"
    );

    let older = dir.join("older.safetensors");
    with_metadata(&src, &older, |m| {
        m.remove("gemma_source_checkpoint");
        m.insert("model_version".into(), "2.3.0".into());
    })?;
    let msg = load_split_error(&older);
    ensure!(msg.contains("expected a Gemma-3 config"), "{msg}");

    // The unedited copy loads (the rewrite itself is not what fails above).
    let same = dir.join("same.safetensors");
    with_metadata(&src, &same, |_| {})?;
    ensure!(
        load_split_error(&same) == "loaded",
        "{}",
        load_split_error(&same)
    );
    Ok(())
}

#[test]
fn repeated_prompt_is_served_from_the_cache_and_on_demand_gemma_agrees() -> Result<()> {
    let g = SET.load("text_encoder")?;
    let text = prompts(&g)?.swap_remove(0);
    let max_length = max_length(&g)?;
    let encoder = TextEncoder::load_split(
        &text_file()?,
        &transformer_file()?,
        &options(max_length, 4),
        DType::F32,
        &device(),
    )?;
    let first = encoder.encode(&text)?;
    let second = encoder.encode(&text)?;
    let stats = encoder.cache_stats();
    ensure!((stats.hits, stats.misses) == (1, 1), "{stats:?}");
    let on_demand = TextEncoder::load_split(
        &text_file()?,
        &transformer_file()?,
        &TextEncoderOptions {
            gemma_residency: GemmaResidency::OnDemand,
            ..options(max_length, 0)
        },
        DType::F32,
        &device(),
    )?
    .encode(&text)?;
    for (a, b) in [
        (&first.video_context, &second.video_context),
        (&first.audio_context, &second.audio_context),
        (&first.video_context, &on_demand.video_context),
        (&first.audio_context, &on_demand.audio_context),
    ] {
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        ensure!(diff == 0.0, "contexts differ by {diff}");
    }
    Ok(())
}

/// The same code in bfloat16 (the production dtype): runs end to end and stays near the float32
/// reference. bf16 carries ~3 significant digits, so this bound catches dtype bugs (a wrong cast,
/// an f32-only op), not parity.
#[test]
fn text_encoder_runs_in_bf16() -> Result<()> {
    let g = SET.load("text_encoder")?;
    let text = prompts(&g)?.swap_remove(0);
    let encoder = TextEncoder::load_split(
        &text_file()?,
        &transformer_file()?,
        &options(max_length(&g)?, 0),
        DType::BF16,
        &device(),
    )?;
    let out = encoder.encode(&text)?;
    ensure!(out.video_context.dtype() == DType::BF16);
    for (key, ours) in [
        ("out.video_encoding", &out.video_context),
        ("out.audio_encoding", &out.audio_context),
    ] {
        let reference = row(&g, key, 0)?;
        let ours = ours.to_dtype(DType::F32)?;
        let rel = ((&ours - &reference)?.sqr()?.sum_all()?.to_scalar::<f32>()?
            / reference.sqr()?.sum_all()?.to_scalar::<f32>()?)
        .sqrt();
        println!("bf16 {key}[0]: rel_l2 {rel:.3e} (bound 5e-2)");
        ensure!(rel <= 5e-2, "bf16 {key}[0]: rel_l2 {rel:.3e} > 5e-2");
    }
    Ok(())
}

/// `testdata/gemma4-variants` (scripts/reference/make_gemma4_variants.py): transformers 5.14's
/// Gemma-4 on the options the 2.5 golden's config leaves off, and ltx-core 1.2.0's tokenizer under
/// other `tokenizer_config.json` flags.
fn variants() -> Result<(PathBuf, Golden, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/gemma4-variants");
    let g = Golden::load_from(&dir, "gemma4_variants")?;
    let info = g.info().context("gemma4_variants has no info")?;
    Ok((dir, g, info))
}

/// K=V attention with biases, KV-shared layers with double-wide MLPs, all-bidirectional attention
/// (halved sliding window), linear / proportional-on-sliding RoPE with the exact GELU, and a config
/// that only gives sizes (class defaults, last layer forced to full attention); every file loads
/// through `GemmaAssets` in the Comfy-flat or the HF key layout. The padded batch (HF's run, with a
/// literal image placeholder in prompt 0) and the compact run of the padded prompt must match.
#[test]
fn gemma4_options_match_transformers() -> Result<()> {
    let (dir, g, info) = variants()?;
    let ids = g
        .get("in.input_ids")?
        .to_dtype(DType::U32)?
        .to_device(&device())?;
    let mask = g.get("in.attention_mask")?.to_device(&device())?;
    let (b, t) = ids.dims2()?;
    let keep = mask.to_dtype(DType::F32)?.reshape((b, 1, t, 1))?;
    let variants = info["variants"]
        .as_object()
        .context("info.variants")?
        .clone();
    ensure!(!variants.is_empty(), "no variants");
    let mut checks = Checks::new(&g);
    for key in g.keys_with_prefix("in.") {
        checks.covered(&key);
    }
    for (name, v) in &variants {
        let file = dir.join(v["file"].as_str().context("variant file")?);
        let model = gemma(&file, DType::F32)?;
        let key = format!("out.{name}.hidden_states");
        let states = model.forward(&ids, Some(&mask), 0)?;
        let ours = Tensor::stack(&states, 1)?.broadcast_mul(&keep)?;
        checks.check(&key, &ours)?;
        // The left-padded prompt alone, valid tokens at their padded positions.
        for p in 0..b {
            let n = mask
                .get(p)?
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()? as usize;
            let pad = t - n;
            let compact =
                model.forward(&ids.get(p)?.narrow(0, pad, n)?.unsqueeze(0)?, None, pad)?;
            let ours = Tensor::stack(&compact, 1)?.squeeze(0)?;
            let reference = g.get_f32(&key, &device())?.get(p)?.narrow(1, pad, n)?;
            let label = format!("{key}[{p}][valid tokens, compact run]");
            checks.check_part(&key, &label, &ours, &reference)?;
        }
    }
    let prefixes: Vec<String> = variants.keys().map(|n| format!("out.{n}.")).collect();
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    checks.finish(&prefixes)?;
    Ok(())
}

/// ltx-core 1.2.0's `LTXGemmaTokenizer` over transformers 5's `PreTrainedTokenizerFast` with
/// `add_bos_token` / `add_eos_token` set (the template replaces the file's), without a pad token
/// (EOS pads), and with left truncation; prompts include a literal `<bos>`, an empty one, a
/// placeholder token and ones longer than `max_length`.
#[test]
fn tokenizer_follows_tokenizer_config_flags_like_transformers() -> Result<()> {
    let (_, g, info) = variants()?;
    let tokenizer_json = g.get("in.tokenizer_json")?.to_vec1::<u8>()?;
    let max_length = info["tokenizer_max_length"]
        .as_u64()
        .context("max length")? as usize;
    let texts: Vec<String> = serde_json::from_value(info["tokenizer_prompts"].clone())?;
    let cases = info["tokenizer_cases"]
        .as_object()
        .context("tokenizer_cases")?;
    ensure!(!cases.is_empty(), "no tokenizer cases");
    let mut checks = Checks::new(&g);
    for (case, cfg) in cases {
        let tok = ltx2_model::text::GemmaTokenizer::from_hf_assets(
            &tokenizer_json,
            Some(cfg),
            max_length,
        )?;
        let mut ids = Vec::new();
        let mut masks = Vec::new();
        for text in &texts {
            let (i, m) = tok.encode(text)?.to_tensors(&device())?;
            ids.push(i);
            masks.push(m);
        }
        checks.check(
            &format!("out.tokenizer.{case}.input_ids"),
            &Tensor::cat(&ids, 0)?,
        )?;
        checks.check(
            &format!("out.tokenizer.{case}.attention_mask"),
            &Tensor::cat(&masks, 0)?,
        )?;
    }
    checks.finish(&["out.tokenizer."])?;
    Ok(())
}
