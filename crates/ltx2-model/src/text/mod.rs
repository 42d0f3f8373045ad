//! Text path: Gemma-3 tokenizer and encoder, the LTX feature extractor, the embeddings connectors
//! and the prompt cache, assembled by [`TextEncoder`].

pub mod cache;
pub mod connector;
pub mod encoder;
pub mod feature_extractor;
pub mod gemma3;
pub mod tokenizer;

pub use cache::{CacheStats, PromptCache, PromptEmbeddings};
pub use connector::{ConnectorConfig, ConnectorKind, Embeddings1DConnector};
pub use encoder::{GemmaResidency, TextEncoder, TextEncoderOptions};
pub use feature_extractor::{
    FeatureExtractor, FeatureExtractorConfig, FeatureExtractorV1, FeatureExtractorV2,
    FeatureExtractorV2Config, FeatureExtractorVariant, TextFeatures,
};
pub use gemma3::{Gemma3Config, Gemma3TextModel};
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
