//! Attention perturbations used by the guiders (`ltx_core/guidance/perturbations.py`): STG replaces a
//! self-attention by its value projection in chosen blocks; an "isolated" modality skips both A↔V
//! cross-attentions. They apply to the whole batch of one forward (the pipelines run separate
//! forwards for the perturbed passes).

/// A set of transformer block indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Blocks {
    #[default]
    None,
    All,
    Only(Vec<usize>),
}

impl Blocks {
    pub fn contains(&self, block: usize) -> bool {
        match self {
            Blocks::None => false,
            Blocks::All => true,
            Blocks::Only(list) => list.contains(&block),
        }
    }
}

/// Which attentions to perturb in which blocks. `Default` = no perturbation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perturbations {
    /// `SKIP_VIDEO_SELF_ATTN`: `attn1` output becomes `to_out(to_v(x))`.
    pub skip_video_self_attn: Blocks,
    /// `SKIP_AUDIO_SELF_ATTN`: same for `audio_attn1`.
    pub skip_audio_self_attn: Blocks,
    /// `SKIP_A2V_CROSS_ATTN`: the `audio_to_video_attn` update is dropped.
    pub skip_a2v_cross_attn: Blocks,
    /// `SKIP_V2A_CROSS_ATTN`: the `video_to_audio_attn` update is dropped.
    pub skip_v2a_cross_attn: Blocks,
}

impl Perturbations {
    pub fn none() -> Self {
        Self::default()
    }

    /// Spatio-temporal guidance: perturb the video and audio self-attentions of `blocks`.
    pub fn stg(blocks: &[usize]) -> Self {
        Self {
            skip_video_self_attn: Blocks::Only(blocks.to_vec()),
            skip_audio_self_attn: Blocks::Only(blocks.to_vec()),
            ..Self::default()
        }
    }

    /// Each modality sees only itself: both A↔V cross-attentions skipped in every block.
    pub fn isolated() -> Self {
        Self {
            skip_a2v_cross_attn: Blocks::All,
            skip_v2a_cross_attn: Blocks::All,
            ..Self::default()
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}
