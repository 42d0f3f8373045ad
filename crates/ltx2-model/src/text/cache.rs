//! A bounded LRU of encoded prompts, so a repeated prompt (the same prompt with another seed, the
//! default negative prompt of CFG pipelines) skips Gemma, the feature extractor and the connectors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use candle_core::Tensor;

/// What the DiT needs from one prompt.
#[derive(Debug, Clone)]
pub struct PromptEmbeddings {
    /// `(1, max_length, video connector width)`: video connector output, the text context of the
    /// DiT (through `caption_projection` in LTX-2.0, straight into `attn2` in LTX-2.3).
    pub video_context: Tensor,
    /// `(1, max_length, audio connector width)`: audio connector output, likewise for
    /// `audio_attn2`.
    pub audio_context: Tensor,
    /// Real tokens of the prompt, `<bos>` included (the rest of the context is registers).
    pub num_tokens: usize,
    /// Whether the prompt was cut to `max_length` tokens.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub len: usize,
    pub capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    model_id: String,
    prompt: String,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<Key, (PromptEmbeddings, u64)>,
    clock: u64,
}

/// Keyed by the exact prompt string (no stripping: the tokenizer decides what is equivalent, and
/// a cache must never merge two prompts the encoder could tell apart) and a model id. Capacity 0
/// disables caching. Safe to share between threads.
#[derive(Debug)]
pub struct PromptCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PromptCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                clock: 0,
            }),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached embeddings, counting a hit or a miss.
    pub fn get(&self, model_id: &str, prompt: &str) -> Option<PromptEmbeddings> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let key = Key {
            model_id: model_id.to_string(),
            prompt: prompt.to_string(),
        };
        match inner.entries.get_mut(&key) {
            Some((value, used)) => {
                *used = now;
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(value.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores `value`, evicting the least recently used entry when full.
    pub fn insert(&self, model_id: &str, prompt: &str, value: PromptEmbeddings) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let key = Key {
            model_id: model_id.to_string(),
            prompt: prompt.to_string(),
        };
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            // O(capacity) scan: the capacity is a few dozen prompts at most.
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(key, (value, now));
    }

    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: self.lock().entries.len(),
            capacity: self.capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn value(x: f32) -> PromptEmbeddings {
        let t = Tensor::new(&[x], &Device::Cpu).unwrap();
        PromptEmbeddings {
            video_context: t.clone(),
            audio_context: t,
            num_tokens: 1,
            truncated: false,
        }
    }

    fn scalar(v: &PromptEmbeddings) -> f32 {
        v.video_context.to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn evicts_least_recently_used() {
        let cache = PromptCache::new(2);
        cache.insert("m", "a", value(1.0));
        cache.insert("m", "b", value(2.0));
        assert!(cache.get("m", "a").is_some()); // "b" is now the oldest
        cache.insert("m", "c", value(3.0));
        assert!(cache.get("m", "b").is_none());
        assert_eq!(scalar(&cache.get("m", "a").unwrap()), 1.0);
        assert_eq!(scalar(&cache.get("m", "c").unwrap()), 3.0);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.len), (3, 1, 2));
    }

    #[test]
    fn model_id_and_exact_prompt_are_part_of_the_key() {
        let cache = PromptCache::new(4);
        cache.insert("m1", "a", value(1.0));
        assert!(cache.get("m2", "a").is_none());
        assert!(cache.get("m1", "a ").is_none());
        assert!(cache.get("m1", "a").is_some());
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = PromptCache::new(0);
        cache.insert("m", "a", value(1.0));
        assert!(cache.get("m", "a").is_none());
        assert_eq!(cache.stats().len, 0);
    }
}
