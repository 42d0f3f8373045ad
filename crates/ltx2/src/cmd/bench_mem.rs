//! Peak memory of a `ltx2 bench` run: the process high-water mark (`VmHWM`) on the CPU; on CUDA
//! the device's used memory sampled every 20 ms with `nvidia-smi` (includes the allocator's
//! cached pool, which is what the GPU really has to hold).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::Device;

pub struct PeakMemory {
    /// The sampler, its peak and its latest sample.
    cuda: Option<(Child, Arc<AtomicU64>, Arc<AtomicU64>)>,
}

impl PeakMemory {
    pub fn start(device: &Device) -> Self {
        if !device.is_cuda() {
            return Self { cuda: None };
        }
        let child = Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-lms",
                "20",
                "-i",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return Self { cuda: None };
        };
        let peak = Arc::new(AtomicU64::new(0));
        let last = Arc::new(AtomicU64::new(0));
        if let Some(out) = child.stdout.take() {
            let (p, l) = (peak.clone(), last.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mib) = line.trim().parse::<u64>() {
                        p.fetch_max(mib << 20, Ordering::Relaxed);
                        l.store(mib << 20, Ordering::Relaxed);
                    }
                }
            });
        }
        Self {
            cuda: Some((child, peak, last)),
        }
    }

    pub fn source(&self) -> &'static str {
        match self.cuda {
            Some(_) => "nvidia-smi memory.used (device 0, 20 ms samples)",
            None => "VmHWM (process peak resident memory)",
        }
    }

    pub fn peak_bytes(&self) -> Option<u64> {
        match &self.cuda {
            Some((_, p, _)) => Some(p.load(Ordering::Relaxed)),
            None => proc_status_kb("VmHWM:"),
        }
    }

    /// What is held now: the latest device sample on CUDA (waits one sampling period so it
    /// postdates the caller's last synchronize), the process `VmRSS` on the CPU.
    pub fn current_bytes(&self) -> Option<u64> {
        match &self.cuda {
            Some((_, _, l)) => {
                std::thread::sleep(std::time::Duration::from_millis(60));
                Some(l.load(Ordering::Relaxed))
            }
            None => proc_status_kb("VmRSS:"),
        }
    }
}

impl Drop for PeakMemory {
    fn drop(&mut self) {
        if let Some((child, _, _)) = &mut self.cuda {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `kB` line of `/proc/self/status` (`VmHWM:`, `VmRSS:`), in bytes.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
