//! The Gemma tokenizer as ltx-core drives it: `text.strip()`, the HF tokenizer with truncation to
//! `max_length`, a `<bos>` prepended when the result does not start with one (ltx-core 1.2.0's
//! `LTXGemmaTokenizer`: Gemma-3's template already emits it, Gemma-4's tokenizer has none), LEFT
//! padding with `<pad>` to exactly `max_length`, attention mask 1 on real tokens (`<bos>` included).
//!
//! The HF template decides which special tokens the tokenizer itself adds: from a Gemma-3 folder
//! `GemmaTokenizerFast` always prepends `<bos>` (transformers 4.57, what ltx-core 1.0.0 runs); from
//! packed Gemma assets transformers 5 keeps the file's post-processor unless `tokenizer_config.json`
//! sets `add_bos_token` / `add_eos_token` or the file has none, then builds one from those flags.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::text::TextError;

/// ltx-core's `max_length` for the real model (`module_ops_from_gemma_root`).
pub const LTX2_MAX_LENGTH: usize = 1024;

/// One tokenized prompt, `max_length` long, left padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPrompt {
    pub input_ids: Vec<u32>,
    /// 1 = token, 0 = padding.
    pub attention_mask: Vec<u32>,
    /// Whether tokens past `max_length` were dropped.
    pub truncated: bool,
}

impl TokenizedPrompt {
    /// Number of real tokens (`<bos>` included).
    pub fn num_valid(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Number of leading pad positions (left padding).
    pub fn num_padding(&self) -> usize {
        self.input_ids.len() - self.num_valid()
    }

    /// The real tokens only, `(1, n)` u32.
    pub fn valid_ids_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let ids = self.input_ids[self.num_padding()..].to_vec();
        let n = ids.len();
        Tensor::from_vec(ids, (1, n), device)
    }

    /// `(input_ids, attention_mask)` as `(1, max_length)` u32 tensors.
    pub fn to_tensors(&self, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let t = self.input_ids.len();
        Ok((
            Tensor::from_vec(self.input_ids.clone(), (1, t), device)?,
            Tensor::from_vec(self.attention_mask.clone(), (1, t), device)?,
        ))
    }
}

#[derive(Clone)]
pub struct GemmaTokenizer {
    tokenizer: tokenizers::Tokenizer,
    bos_id: u32,
    pad_id: u32,
    max_length: usize,
}

impl std::fmt::Debug for GemmaTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GemmaTokenizer")
            .field("bos_id", &self.bos_id)
            .field("pad_id", &self.pad_id)
            .field("max_length", &self.max_length)
            .finish()
    }
}

/// `tokenizer_config.json` keys transformers does not pass to the tokenizer constructor.
const TOKENIZER_CONFIG_SKIP: [&str; 8] = [
    "tokenizer_class",
    "auto_map",
    "model_max_length",
    "backend",
    "is_local",
    "local_files_only",
    "processor_class",
    "added_tokens_decoder",
];

impl GemmaTokenizer {
    /// Loads `<folder>/tokenizer.json` (HF fast-tokenizer format, which the real Gemma folder ships
    /// next to its SentencePiece model).
    pub fn from_folder(folder: &Path, max_length: usize) -> Result<Self, TextError> {
        Self::from_file(&folder.join("tokenizer.json"), max_length)
    }

    pub fn from_file(path: &Path, max_length: usize) -> Result<Self, TextError> {
        let tokenizer = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::new(tokenizer, max_length)
    }

    /// A Gemma-3 folder's tokenizer as ltx-core 1.0.0 loads it (`AutoTokenizer` ->
    /// `GemmaTokenizerFast`, `add_bos_token` true, `add_eos_token` false): `<bos>` always first,
    /// whatever template the file carries.
    pub fn new(tokenizer: tokenizers::Tokenizer, max_length: usize) -> Result<Self, TextError> {
        Self::build(
            tokenizer,
            "<bos>",
            "<pad>",
            Some((true, false)),
            TruncationDirection::Right,
            max_length,
        )
    }

    /// The tokenizer of Gemma assets (the bytes of `tokenizer.json` and the parsed
    /// `tokenizer_config.json`) as ltx-core 1.2.0 builds it: `PreTrainedTokenizerFast` with the
    /// config's special tokens, flags and truncation side.
    pub fn from_hf_assets(
        tokenizer_json: &[u8],
        tokenizer_config: Option<&serde_json::Value>,
        max_length: usize,
    ) -> Result<Self, TextError> {
        let tokenizer = tokenizers::Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| TextError::Tokenizer(format!("tokenizer.json: {e}")))?;
        let empty = serde_json::Map::new();
        let cfg = match tokenizer_config {
            Some(serde_json::Value::Object(c)) => c,
            Some(_) => {
                return Err(TextError::Tokenizer(
                    "tokenizer_config.json is not a JSON object".into(),
                ))
            }
            None => &empty,
        };
        let get = |key: &str| {
            cfg.get(key)
                .filter(|_| !TOKENIZER_CONFIG_SKIP.contains(&key))
        };
        let token = |key: &str| -> Option<String> {
            match get(key)? {
                serde_json::Value::String(s) => Some(s.clone()),
                // AddedToken dicts.
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let bos = token("bos_token").ok_or_else(|| {
            TextError::Tokenizer(
                "tokenizer_config.json has no bos_token; the encode path needs a leading BOS"
                    .into(),
            )
        })?;
        let eos = token("eos_token");
        // `LTXGemmaTokenizer`: a tokenizer without pad token pads with EOS.
        let pad = token("pad_token").or_else(|| eos.clone()).ok_or_else(|| {
            TextError::Tokenizer("tokenizer_config.json has neither pad_token nor eos_token".into())
        })?;
        let flag = |key: &str| get(key).map(|v| v.as_bool() == Some(true));
        let explicit = flag("add_bos_token").is_some() || flag("add_eos_token").is_some();
        let template = if explicit || tokenizer.get_post_processor().is_none() {
            let add_eos = flag("add_eos_token").unwrap_or(false) && eos.is_some();
            Some((flag("add_bos_token").unwrap_or(false), add_eos))
        } else {
            None
        };
        let direction = match get("truncation_side").and_then(|v| v.as_str()) {
            None | Some("right") => TruncationDirection::Right,
            Some("left") => TruncationDirection::Left,
            Some(other) => {
                return Err(TextError::Tokenizer(format!(
                    "tokenizer_config.json truncation_side `{other}`"
                )))
            }
        };
        let mut built = Self::build(tokenizer, &bos, &pad, None, direction, max_length)?;
        if let Some((add_bos, add_eos)) = template {
            let eos = eos.unwrap_or_default();
            built.set_template(add_bos, &bos, add_eos, &eos)?;
        }
        Ok(built)
    }

    /// `template`: `Some((add_bos, add_eos))` replaces the file's post-processor by HF's
    /// `update_post_processor` template; `None` keeps it.
    fn build(
        tokenizer: tokenizers::Tokenizer,
        bos: &str,
        pad: &str,
        template: Option<(bool, bool)>,
        direction: TruncationDirection,
        max_length: usize,
    ) -> Result<Self, TextError> {
        if max_length == 0 {
            return Err(TextError::Tokenizer("max_length must be >= 1".into()));
        }
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| TextError::Tokenizer(format!("vocabulary has no `{token}` token")))
        };
        let (bos_id, pad_id) = (id(bos)?, id(pad)?);
        let mut tokenizer = tokenizer;
        // The call-time settings of ltx-core (`truncation=True, max_length`, no padding) replace
        // whatever the file configures.
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| TextError::Tokenizer(format!("truncation: {e}")))?;
        tokenizer.with_padding(None);
        let mut built = Self {
            tokenizer,
            bos_id,
            pad_id,
            max_length,
        };
        if let Some((add_bos, add_eos)) = template {
            built.set_template(add_bos, bos, add_eos, "")?;
        }
        Ok(built)
    }

    /// HF's `update_post_processor`: `[bos] $A [eos]` by the two flags.
    fn set_template(
        &mut self,
        add_bos: bool,
        bos: &str,
        add_eos: bool,
        eos: &str,
    ) -> Result<(), TextError> {
        let mut single = String::new();
        let mut specials = Vec::new();
        if add_bos {
            single.push_str(&format!("{bos}:0 "));
            specials.push((bos.to_string(), self.bos_id));
        }
        single.push_str("$A:0");
        if add_eos {
            single.push_str(&format!(" {eos}:0"));
            let eos_id = self
                .tokenizer
                .token_to_id(eos)
                .ok_or_else(|| TextError::Tokenizer(format!("vocabulary has no `{eos}` token")))?;
            specials.push((eos.to_string(), eos_id));
        }
        let template = TemplateProcessing::builder()
            .try_single(single.as_str())
            .map_err(|e| TextError::Tokenizer(format!("template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| TextError::Tokenizer(format!("template: {e}")))?;
        self.tokenizer.with_post_processor(Some(template));
        Ok(())
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Tokenizes one prompt (`LTXGemmaTokenizer.tokenize_with_weights`).
    pub fn encode(&self, text: &str) -> Result<TokenizedPrompt, TextError> {
        let encoding = self
            .tokenizer
            .encode(python_strip(text), true)
            .map_err(|e| TextError::Tokenizer(format!("encoding prompt: {e}")))?;
        let mut truncated = !encoding.get_overflowing().is_empty();
        let mut ids = encoding.get_ids().to_vec();
        if ids.first() != Some(&self.bos_id) {
            ids.insert(0, self.bos_id);
            truncated |= ids.len() > self.max_length;
            ids.truncate(self.max_length);
        }
        let pad = self.max_length - ids.len();
        let mut input_ids = vec![self.pad_id; pad];
        input_ids.extend_from_slice(&ids);
        let mut attention_mask = vec![0u32; pad];
        attention_mask.resize(self.max_length, 1);
        Ok(TokenizedPrompt {
            input_ids,
            attention_mask,
            truncated,
        })
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators U+001C..U+001F, which
/// Python counts as whitespace and Rust's `trim` does not.
fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python() {
        assert_eq!(python_strip("  a b \n\t"), "a b");
        assert_eq!(python_strip("\u{1c}x\u{3000}"), "x");
        assert_eq!(python_strip("\u{200b}x"), "\u{200b}x");
    }
}
