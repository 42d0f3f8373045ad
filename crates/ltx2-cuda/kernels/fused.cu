// Fused elementwise kernels of the LTX-2 DiT block, compiled to PTX by build.rs.
//
// Each kernel reproduces the rounding of the candle composite it replaces (ltx2-model's
// reference functions): every intermediate that the composite stores in the activation dtype is
// rounded to that dtype here too, and products and sums use the _rn intrinsics so nvcc cannot
// contract them into FMAs the composite does not do. The purely elementwise kernels are thus
// bitwise equal to the composites; the RMSNorm sums its row in another order than candle.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

// Round-trip through the storage type: what a composite op does between two candle ops.
__device__ __forceinline__ float ld(const float v) { return v; }
__device__ __forceinline__ float ld(const __nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ld(const __half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T st(float v);
template <> __device__ __forceinline__ float st<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half st<__half>(float v) { return __float2half_rn(v); }
template <typename T> __device__ __forceinline__ float rnd(float v) { return ld(st<T>(v)); }

// out = modulate(rms_norm(x), scale, shift) = n·(1 + scale) + shift with n = x·rsqrt(mean(x²)+eps).
// x, out: (rows, cols) contiguous, row r = (batch r / tokens, token r % tokens). scale/shift rows
// are found through their own batch and token strides (token stride 0 when one row per batch), so
// the AdaLN views are read in place. One block per row.
template <typename T>
__device__ void rms_norm_modulate(const T *x, const T *scale, const T *shift, T *out, int cols,
                                  int tokens, long ss_batch_stride, long ss_token_stride, float eps) {
    const long row = blockIdx.x;
    const T *xr = x + row * cols;
    const long b = row / tokens, t = row % tokens;
    const long ss = b * ss_batch_stride + t * ss_token_stride;
    float sum = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = ld(xr[i]);
        sum += v * v;
    }
    // Warp sums, then one warp over the warp sums.
    __shared__ float warp_sums[32];
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_sums[warp] = sum;
    __syncthreads();
    if (warp == 0) {
        sum = lane < (int)(blockDim.x / 32) ? warp_sums[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
        if (lane == 0) warp_sums[0] = sum;
    }
    __syncthreads();
    const float inv = rsqrtf(warp_sums[0] / (float)cols + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const float n = rnd<T>(__fmul_rn(ld(xr[i]), inv));          // rms_norm output
        const float s1 = rnd<T>(__fadd_rn(ld(scale[ss + i]), 1.f));  // scale + 1
        const float m = rnd<T>(__fmul_rn(n, s1));                    // broadcast_mul
        out[row * cols + i] = st<T>(__fadd_rn(m, ld(shift[ss + i])));  // broadcast_add
    }
}

// out = x + y·gate (the gated residual), gate rows addressed like scale/shift above.
template <typename T>
__device__ void gate_residual(const T *x, const T *y, const T *gate, T *out, long n, int cols,
                              int tokens, long g_batch_stride, long g_token_stride) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const long row = i / cols, c = i % cols;
        const long g = (row / tokens) * g_batch_stride + (row % tokens) * g_token_stride + c;
        out[i] = st<T>(__fadd_rn(ld(x[i]), rnd<T>(__fmul_rn(ld(y[i]), ld(gate[g])))));
    }
}

// Split ("rotate-half") RoPE on x (B, T, H·2·half) with tables (B|1, H, T, half): inside each
// head element i < half pairs with i + half: (x1·cos − x2·sin, x2·cos + x1·sin), each product
// rounded as the composite's broadcast_mul. Writes (B, T, H·2·half) directly, no transposes.
template <typename T>
__device__ void rope_split(const T *x, const T *cos, const T *sin, T *out, long n_pairs, int tokens,
                           int heads, int half, long table_batch_stride) {
    for (long p = blockIdx.x * (long)blockDim.x + threadIdx.x; p < n_pairs; p += (long)gridDim.x * blockDim.x) {
        const long i = p % half;
        const long h = (p / half) % heads;
        const long t = (p / ((long)half * heads)) % tokens;
        const long b = p / ((long)half * heads * tokens);
        const long xo = ((b * tokens + t) * heads + h) * 2L * half + i;
        const long to = b * table_batch_stride + (h * tokens + t) * half + i;
        const float x1 = ld(x[xo]), x2 = ld(x[xo + half]);
        const float c = ld(cos[to]), s = ld(sin[to]);
        out[xo] = st<T>(__fsub_rn(rnd<T>(__fmul_rn(x1, c)), rnd<T>(__fmul_rn(x2, s))));
        out[xo + half] = st<T>(__fadd_rn(rnd<T>(__fmul_rn(x2, c)), rnd<T>(__fmul_rn(x1, s))));
    }
}

// Weight-only FP8: dst = cast(f32(e4m3 w) · scale + 0), candle's `to_dtype(f32).affine(scale, 0)`
// bit for bit (the + 0 turns −0 into +0 as the affine does).
template <typename T>
__device__ void fp8_dequantize(const uint8_t *w, T *dst, long n, float scale) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const __half_raw h = __nv_cvt_fp8_to_halfraw(w[i], __NV_E4M3);
        const float v = __half2float(__half(h));
        dst[i] = st<T>(__fadd_rn(__fmul_rn(v, scale), 0.f));
    }
}

// ltx-core FP8Linear's activation quantization: e4m3(clamp(x / input_scale, ±448)), division
// (not a reciprocal product) and round-to-nearest-even as the CPU emulation.
template <typename T>
__device__ void fp8_quantize(const T *x, uint8_t *q, long n, float input_scale) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = __fdiv_rn(ld(x[i]), input_scale);
        v = fminf(fmaxf(v, -448.f), 448.f);
        q[i] = (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
    }
}

#define INSTANTIATE(SUFFIX, T)                                                                       \
    extern "C" __global__ void rms_norm_modulate_##SUFFIX(const T *x, const T *scale, const T *shift, \
        T *out, int cols, int tokens, long sbs, long sts, float eps) {                              \
        rms_norm_modulate<T>(x, scale, shift, out, cols, tokens, sbs, sts, eps);                    \
    }                                                                                              \
    extern "C" __global__ void gate_residual_##SUFFIX(const T *x, const T *y, const T *gate, T *out, \
        long n, int cols, int tokens, long gbs, long gts) {                                         \
        gate_residual<T>(x, y, gate, out, n, cols, tokens, gbs, gts);                               \
    }                                                                                              \
    extern "C" __global__ void rope_split_##SUFFIX(const T *x, const T *cos, const T *sin, T *out,  \
        long n_pairs, int tokens, int heads, int half, long tbs) {                                  \
        rope_split<T>(x, cos, sin, out, n_pairs, tokens, heads, half, tbs);                         \
    }                                                                                              \
    extern "C" __global__ void fp8_dequantize_##SUFFIX(const uint8_t *w, T *dst, long n, float s) {  \
        fp8_dequantize<T>(w, dst, n, s);                                                            \
    }                                                                                              \
    extern "C" __global__ void fp8_quantize_##SUFFIX(const T *x, uint8_t *q, long n, float s) {     \
        fp8_quantize<T>(x, q, n, s);                                                                \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, __nv_bfloat16)
INSTANTIATE(f16, __half)
