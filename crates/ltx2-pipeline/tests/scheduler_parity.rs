//! `scheduler` golden: the distilled lists and `LTX2Scheduler` for several step counts and
//! token counts (README: default = 4096 tokens; tokens1024 / tokens24576 used latents of that
//! many tokens; nostretch = stretch off).

use candle_core::{Device, Tensor};
use ltx2_model::golden::Golden;
use ltx2_pipeline::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};

fn tensor(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn scheduler_matches_golden() -> anyhow::Result<()> {
    let g = Golden::load("scheduler")?;
    g.check("out.distilled_stage1", &tensor(&DISTILLED_SIGMAS))?;
    g.check("out.distilled_stage2", &tensor(&STAGE2_DISTILLED_SIGMAS))?;
    let keys = g.keys_with_prefix("out.ltx2_");
    assert!(!keys.is_empty());
    for key in keys {
        // out.ltx2_<variant>.steps<N>
        let rest = key.strip_prefix("out.ltx2_").unwrap();
        let (variant, steps) = rest.split_once(".steps").expect("key names its step count");
        let steps: usize = steps.parse()?;
        let (sched, tokens) = match variant {
            "default_tokens" => (Ltx2Scheduler::default(), None),
            "default_tokens_nostretch" => (
                Ltx2Scheduler {
                    stretch: false,
                    ..Default::default()
                },
                None,
            ),
            v => {
                let t: usize = v.strip_prefix("tokens").expect("tokensN variant").parse()?;
                (Ltx2Scheduler::default(), Some(t))
            }
        };
        g.check(&key, &tensor(&sched.sigmas(steps, tokens)))?;
    }
    Ok(())
}
