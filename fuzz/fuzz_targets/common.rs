//! What every target shares.

use std::collections::HashSet;
use std::sync::{Mutex, Once};

use ltx2_pipeline::AudioInputSpec;

/// The LTX-2 / 2.3 audio front-end (16 kHz mel, 1024-point STFT).
#[allow(dead_code)] // not every target checks audio
pub const AUDIO_INPUT: AudioInputSpec = AudioInputSpec {
    sample_rate: 16_000,
    min_samples: 513,
};

/// The server wraps third-party decoders in `catch_unwind`: a panic inside one is that input's
/// 4xx, part of the contract under test. libfuzzer-sys's hook would abort on it, so this hook
/// prints each distinct panic location once (collected by scripts/fuzz.sh for
/// docs/RELIABILITY.md) and lets it unwind. A panic that escapes the target still crashes:
/// libfuzzer-sys catches the unwind and aborts.
pub fn report_caught_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if seen.lock().unwrap().insert(location.clone()) {
                let message = info
                    .payload()
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| info.payload().downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                eprintln!("PANIC-SEEN at {location}: {message}");
            }
        }));
    });
}
