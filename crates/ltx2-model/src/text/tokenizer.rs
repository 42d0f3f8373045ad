//! The Gemma tokenizer as ltx-core's `LTXVGemmaTokenizer` drives it: `text.strip()`, a leading
//! `<bos>`, truncation to `max_length` (keeping `<bos>`), LEFT padding with `<pad>` to exactly
//! `max_length`, attention mask 1 on real tokens (`<bos>` included).

use std::path::Path;

use candle_core::{Device, Tensor};

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

    pub fn new(tokenizer: tokenizers::Tokenizer, max_length: usize) -> Result<Self, TextError> {
        if max_length == 0 {
            return Err(TextError::Tokenizer("max_length must be >= 1".into()));
        }
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| TextError::Tokenizer(format!("vocabulary has no `{token}` token")))
        };
        Ok(Self {
            bos_id: id("<bos>")?,
            pad_id: id("<pad>")?,
            tokenizer,
            max_length,
        })
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

    /// Tokenizes one prompt. `<bos>` is prepended here rather than by the file's post-processor,
    /// because HF's `GemmaTokenizerFast` rebuilds that template from `add_bos_token` anyway.
    pub fn encode(&self, text: &str) -> Result<TokenizedPrompt, TextError> {
        let encoding = self
            .tokenizer
            .encode(python_strip(text), false)
            .map_err(|e| TextError::Tokenizer(format!("encoding prompt: {e}")))?;
        let body = encoding.get_ids();
        let truncated = body.len() > self.max_length - 1;
        let body = &body[..body.len().min(self.max_length - 1)];
        let n = body.len() + 1;
        let pad = self.max_length - n;
        let mut input_ids = vec![self.pad_id; pad];
        input_ids.push(self.bos_id);
        input_ids.extend_from_slice(body);
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
