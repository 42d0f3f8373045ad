//! Compiles the CUDA side of ltx2 when the `cuda` feature is on, and nothing otherwise.
//!
//! - `kernels/fused.cu` → PTX with nvcc (`$CUDA_HOME/bin/nvcc`, else `nvcc` on PATH) for
//!   `CUDA_COMPUTE_CAP` (default 90), embedded with `include_str!` and loaded through candle.
//! - `csrc/cudnn_shim.cpp` → a static library with the host C++ compiler, against the header-only
//!   cudnn-frontend (`LTX2_CUDNN_FRONTEND_INCLUDE`) and `cudnn.h` (`LTX2_CUDNN_INCLUDE`), both from
//!   PyPI wheels (scripts/build-cuda.sh). Without those headers the shim is left out and the
//!   crate reports "cuDNN not compiled in" at run time (cfg `ltx2_no_cudnn`): a CUDA build never
//!   fails for want of cuDNN.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ltx2_no_cudnn)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels/fused.cu");
    println!("cargo::rerun-if-changed=csrc/cudnn_shim.cpp");
    for var in [
        "CUDA_HOME",
        "CUDA_COMPUTE_CAP",
        "LTX2_CUDNN_FRONTEND_INCLUDE",
        "LTX2_CUDNN_INCLUDE",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let cuda_home = env::var("CUDA_HOME").ok().map(PathBuf::from);
    let cuda_include = cuda_home.as_ref().map(|h| h.join("include"));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();

    let nvcc = cuda_home
        .as_ref()
        .map(|h| h.join("bin/nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let ptx = out.join("fused.ptx");
    let status = Command::new(&nvcc)
        .args([
            "--ptx",
            "-O3",
            "-std=c++17",
            &format!("-arch=compute_{cap}"),
        ])
        .arg("kernels/fused.cu")
        .arg("-o")
        .arg(&ptx)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
    assert!(status.success(), "nvcc failed on kernels/fused.cu");

    let frontend = env::var_os("LTX2_CUDNN_FRONTEND_INCLUDE").map(PathBuf::from);
    let cudnn = env::var_os("LTX2_CUDNN_INCLUDE").map(PathBuf::from);
    match (frontend, cudnn) {
        (Some(fe), Some(dnn))
            if fe.join("cudnn_frontend.h").exists() && dnn.join("cudnn.h").exists() =>
        {
            let mut b = cc::Build::new();
            b.cpp(true)
                .std("c++17")
                .file("csrc/cudnn_shim.cpp")
                .include(&fe)
                .include(&dnn)
                .define("NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING", None)
                // The frontend's own headers are not ours to keep warning-free.
                .warnings(false)
                .opt_level(2);
            if let Some(inc) = &cuda_include {
                b.include(inc);
            }
            b.compile("ltx2_cudnn_shim");
            // dlopen lives in libc on current glibc; libdl keeps older ones linking.
            println!("cargo::rustc-link-lib=dylib=dl");
            println!("cargo::rustc-link-lib=dylib=stdc++");
        }
        _ => {
            println!(
                "cargo::warning=cuDNN shim left out: set LTX2_CUDNN_FRONTEND_INCLUDE and \
                 LTX2_CUDNN_INCLUDE (scripts/build-cuda.sh does) for cuDNN SDPA and conv3d"
            );
            println!("cargo::rustc-cfg=ltx2_no_cudnn");
        }
    }
}
