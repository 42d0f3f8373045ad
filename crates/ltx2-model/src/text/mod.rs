//! Text path: Gemma-3 tokenizer and encoder, the LTX feature extractor and the embeddings connectors.
