//! Text path: the Gemma tokenizer and text towers (Gemma-3 for LTX-2.0 / 2.3, Gemma-4 for 2.5),
//! the packed text-encoder assets, the LTX feature extractor, the embeddings connectors and the
//! prompt cache, assembled by [`TextEncoder`].

pub mod cache;
pub mod connector;
pub mod encoder;
pub mod feature_extractor;
pub mod gemma;
pub mod gemma3;
pub mod gemma4;
pub mod gemma_assets;
pub mod tokenizer;

pub use cache::{CacheStats, PromptCache, PromptEmbeddings};
pub use connector::{ConnectorConfig, ConnectorKind, Embeddings1DConnector};
pub use encoder::{check_gemma_version, GemmaResidency, TextEncoder, TextEncoderOptions};
pub use feature_extractor::{
    FeatureExtractor, FeatureExtractorConfig, FeatureExtractorV1, FeatureExtractorV2,
    FeatureExtractorV2Config, FeatureExtractorVariant, TextFeatures,
};
pub use gemma::{GemmaSource, GemmaTextModel};
pub use gemma3::{Gemma3Config, Gemma3TextModel};
pub use gemma4::{Gemma4Config, Gemma4TextModel};
pub use gemma_assets::GemmaAssets;
pub use tokenizer::{GemmaTokenizer, TokenizedPrompt, LTX2_MAX_LENGTH};

/// Errors of the text path that callers may want to tell apart (a bad Gemma folder vs. a bad
/// checkpoint vs. a compute failure).
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("text encoder config: {0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("text encoder weights: {0}")]
    MissingWeights(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
