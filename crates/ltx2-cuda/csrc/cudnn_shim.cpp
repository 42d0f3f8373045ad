// A C ABI over NVIDIA's cudnn-frontend graph API for the two ops ltx2 takes from cuDNN: scaled
// dot-product attention (forward, inference) and N-d convolution (+ bias).
//
// Built with NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING: the frontend resolves every cuDNN entry point
// through `cudnn_frontend::cudnn_dlhandle`, which ltx_cudnn_init() fills with dlopen. The binary
// therefore has no link-time dependency on libcudnn; a host without it gets an error string from
// init and ltx2 keeps its candle paths. No C++ exception crosses the ABI.
//
// Graphs are built once per shape and cached (the plan build costs milliseconds to seconds;
// the per-call cost is then one execute). Callers pass the CUDA stream candle runs on.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <cudnn_frontend.h>

namespace fe = cudnn_frontend;

namespace cudnn_frontend {
void *cudnn_dlhandle = nullptr;
}

namespace {

std::mutex g_mutex;
cudnnHandle_t g_handle = nullptr;
int g_version = 0;

void set_err(char *err, size_t len, const std::string &msg) {
    if (err && len) {
        std::snprintf(err, len, "%s", msg.c_str());
    }
}

fe::DataType_t to_fe(int dtype) {
    switch (dtype) {
        case 0: return fe::DataType_t::FLOAT;
        case 1: return fe::DataType_t::BFLOAT16;
        default: return fe::DataType_t::HALF;
    }
}

// Status codes shared with the Rust side (src/cudnn.rs).
constexpr int OK = 0;
constexpr int FAILED = 1;
constexpr int NEED_WORKSPACE = 2;

struct Cached {
    std::shared_ptr<fe::graph::Graph> graph;
    int64_t workspace = 0;
    std::string error;  // non-empty: this shape has no plan (not retried)
};

using SdpaKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t>;
std::map<SdpaKey, Cached> g_sdpa;
using ConvKey = std::vector<int64_t>;
std::map<ConvKey, Cached> g_conv;

// Builds the plans of a validated graph; returns the error text ("" on success). `exact_f32`
// drops the engines that round f32 inputs to TF32 (tensor-core f32 convolutions).
std::string build(fe::graph::Graph &g, bool exact_f32) {
    auto check = [](fe::error_t e, const char *what) -> std::string {
        return e.is_good() ? std::string() : std::string(what) + ": " + e.get_message();
    };
    std::string e;
    if (!(e = check(g.validate(), "validate")).empty()) return e;
    if (!(e = check(g.build_operation_graph(g_handle), "build_operation_graph")).empty()) return e;
    if (!(e = check(g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}),
                    "create_execution_plans")).empty())
        return e;
    if (exact_f32) g.deselect_numeric_notes({fe::NumericalNote_t::TENSOR_CORE, fe::NumericalNote_t::DOWN_CONVERT_INPUTS});
    if (!(e = check(g.check_support(g_handle), "check_support")).empty()) return e;
    if (!(e = check(g.build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans")).empty()) return e;
    return "";
}

// Runs a cached graph: reports the workspace it needs when `ws_len` is short, else executes.
int run(Cached &c, void *stream, std::unordered_map<int64_t, void *> &pack, void *ws, size_t ws_len,
        size_t *ws_needed, char *err, size_t err_len) {
    *ws_needed = (size_t)c.workspace;
    if ((size_t)c.workspace > ws_len) return NEED_WORKSPACE;
    if (fe::detail::set_stream(g_handle, (cudaStream_t)stream) != CUDNN_STATUS_SUCCESS) {
        set_err(err, err_len, "cudnnSetStream failed");
        return FAILED;
    }
    auto e = c.graph->execute(g_handle, pack, ws);
    if (e.is_bad()) {
        set_err(err, err_len, "execute: " + e.get_message());
        return FAILED;
    }
    return OK;
}

}  // namespace

extern "C" {

// Loads libcudnn (`path`, else the soname libcudnn.so.9 through the loader's search path) and
// creates the handle on the current CUDA context. Returns cudnnGetVersion() or 0 with `err` set.
int ltx_cudnn_init(const char *path, char *err, size_t err_len) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_version) return g_version;
    try {
        const char *lib = (path && *path) ? path : "libcudnn.so.9";
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *d = dlerror();
            set_err(err, err_len, std::string("dlopen ") + lib + ": " + (d ? d : "unknown error"));
            return 0;
        }
        fe::cudnn_dlhandle = h;
        cudnnHandle_t handle = nullptr;
        auto st = fe::detail::create_handle(&handle);
        if (st != CUDNN_STATUS_SUCCESS) {
            set_err(err, err_len, "cudnnCreate failed with status " + std::to_string((int)st));
            return 0;
        }
        g_handle = handle;
        g_version = (int)fe::detail::get_backend_version();
        return g_version;
    } catch (const std::exception &e) {
        set_err(err, err_len, std::string("cuDNN init: ") + e.what());
        return 0;
    }
}

// softmax(Q·Kᵀ·scale + bias)·V, non-causal, inference (no stats). Q, O: (b, s_q, h, d) and K, V:
// (b, s_kv, h, d), all contiguous (candle's (B, T, H·D) activations, no transposes); `bias`
// optional, additive, (bias_b ∈ {1, b}, 1, s_q, s_kv) contiguous. dtype 1 = bf16, 2 = f16;
// f32 compute.
int ltx_cudnn_sdpa(void *stream, int dtype, int64_t b, int64_t h, int64_t s_q, int64_t s_kv, int64_t d,
                   float scale, const void *q, const void *k, const void *v, const void *bias, int64_t bias_b,
                   void *o, void *ws, size_t ws_len, size_t *ws_needed, char *err, size_t err_len) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_handle) {
        set_err(err, err_len, "cuDNN is not initialised");
        return FAILED;
    }
    try {
        uint32_t scale_bits;
        std::memcpy(&scale_bits, &scale, 4);
        SdpaKey key{dtype, b, h, s_q, s_kv, d, bias ? bias_b : 0, 0, scale_bits};
        auto it = g_sdpa.find(key);
        if (it == g_sdpa.end()) {
            Cached c;
            auto g = std::make_shared<fe::graph::Graph>();
            g->set_io_data_type(to_fe(dtype))
                .set_intermediate_data_type(fe::DataType_t::FLOAT)
                .set_compute_data_type(fe::DataType_t::FLOAT);
            // Logical (b, h, s, d) over memory (b, s, h, d).
            auto bshd = [&](const char *name, int64_t uid, int64_t s) {
                return g->tensor(fe::graph::Tensor_attributes()
                                     .set_name(name)
                                     .set_uid(uid)
                                     .set_dim({b, h, s, d})
                                     .set_stride({s * h * d, d, h * d, 1}));
            };
            auto Q = bshd("Q", 1, s_q), K = bshd("K", 2, s_kv), V = bshd("V", 3, s_kv);
            auto opts = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(false).set_attn_scale(scale);
            if (bias) {
                auto B = g->tensor(fe::graph::Tensor_attributes()
                                       .set_name("bias")
                                       .set_uid(5)
                                       .set_dim({bias_b, 1, s_q, s_kv})
                                       .set_stride({s_q * s_kv, s_q * s_kv, s_kv, 1}));
                opts.set_bias(B);
            }
            auto [O, stats] = g->sdpa(Q, K, V, opts);
            (void)stats;
            O->set_output(true).set_uid(4).set_dim({b, h, s_q, d}).set_stride({s_q * h * d, d, h * d, 1});
            c.error = build(*g, false);
            if (c.error.empty()) {
                c.graph = g;
                c.workspace = g->get_workspace_size();
            }
            it = g_sdpa.emplace(key, std::move(c)).first;
        }
        if (!it->second.error.empty()) {
            set_err(err, err_len, it->second.error);
            return FAILED;
        }
        std::unordered_map<int64_t, void *> pack{
            {1, const_cast<void *>(q)}, {2, const_cast<void *>(k)}, {3, const_cast<void *>(v)}, {4, o}};
        if (bias) pack[5] = const_cast<void *>(bias);
        return run(it->second, stream, pack, ws, ws_len, ws_needed, err, err_len);
    } catch (const std::exception &e) {
        set_err(err, err_len, std::string("sdpa: ") + e.what());
        return FAILED;
    }
}

// Cross-correlation (PyTorch conv) of x (n, c, spatial…) channels-last with w (k, c, kernel…)
// channels-last, plus bias (k) in f32, `nd` spatial dims (1..=3), stride and dilation 1,
// symmetric zero padding `pad[i]`; y (n, k, out…) channels-last. The conv accumulates in f32 and
// the bias is added before the one rounding to the io dtype. f32 io excludes TF32 engines so f32
// results stay f32-accurate.
int ltx_cudnn_conv_bias(void *stream, int dtype, int nd, const int64_t *x_dims, const int64_t *w_dims,
                        const int64_t *pad, const void *x, const void *w, const void *bias, void *y, void *ws,
                        size_t ws_len, size_t *ws_needed, char *err, size_t err_len) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_handle) {
        set_err(err, err_len, "cuDNN is not initialised");
        return FAILED;
    }
    if (nd < 1 || nd > 3) {
        set_err(err, err_len, "conv: 1 to 3 spatial dims");
        return FAILED;
    }
    try {
        const int rank = nd + 2;
        ConvKey key{dtype, nd};
        key.insert(key.end(), x_dims, x_dims + rank);
        key.insert(key.end(), w_dims, w_dims + rank);
        key.insert(key.end(), pad, pad + nd);
        // Channels-last strides of an (n, c, spatial…) shape.
        auto nhwc = [rank](const std::vector<int64_t> &dims) {
            std::vector<int64_t> s(rank);
            int64_t acc = dims[1];
            s[1] = 1;
            for (int i = rank - 1; i >= 2; --i) {
                s[i] = acc;
                acc *= dims[i];
            }
            s[0] = acc;
            return s;
        };
        std::vector<int64_t> xd(x_dims, x_dims + rank), wd(w_dims, w_dims + rank), yd(rank);
        yd[0] = xd[0];
        yd[1] = wd[0];
        for (int i = 0; i < nd; ++i) yd[2 + i] = xd[2 + i] + 2 * pad[i] - wd[2 + i] + 1;
        auto it = g_conv.find(key);
        if (it == g_conv.end()) {
            Cached c;
            auto g = std::make_shared<fe::graph::Graph>();
            g->set_io_data_type(to_fe(dtype))
                .set_intermediate_data_type(fe::DataType_t::FLOAT)
                .set_compute_data_type(fe::DataType_t::FLOAT);
            auto X = g->tensor(fe::graph::Tensor_attributes().set_name("x").set_uid(1).set_dim(xd).set_stride(nhwc(xd)));
            auto W = g->tensor(fe::graph::Tensor_attributes().set_name("w").set_uid(2).set_dim(wd).set_stride(nhwc(wd)));
            std::vector<int64_t> bd(rank, 1);
            bd[1] = wd[0];
            auto B = g->tensor(fe::graph::Tensor_attributes()
                                   .set_name("bias")
                                   .set_uid(3)
                                   .set_dim(bd)
                                   .set_stride(nhwc(bd))
                                   .set_data_type(fe::DataType_t::FLOAT));
            std::vector<int64_t> p(pad, pad + nd), ones(nd, 1);
            auto conv = g->conv_fprop(
                X, W, fe::graph::Conv_fprop_attributes().set_name("conv").set_padding(p).set_stride(ones).set_dilation(ones));
            conv->set_data_type(fe::DataType_t::FLOAT);
            auto Y = g->pointwise(conv, B, fe::graph::Pointwise_attributes().set_name("bias").set_mode(fe::PointwiseMode_t::ADD));
            Y->set_output(true).set_uid(4).set_dim(yd).set_stride(nhwc(yd));
            c.error = build(*g, dtype == 0);
            if (c.error.empty()) {
                c.graph = g;
                c.workspace = g->get_workspace_size();
            }
            it = g_conv.emplace(key, std::move(c)).first;
        }
        if (!it->second.error.empty()) {
            set_err(err, err_len, it->second.error);
            return FAILED;
        }
        std::unordered_map<int64_t, void *> pack{{1, const_cast<void *>(x)},
                                                 {2, const_cast<void *>(w)},
                                                 {3, const_cast<void *>(bias)},
                                                 {4, y}};
        return run(it->second, stream, pack, ws, ws_len, ws_needed, err, err_len);
    } catch (const std::exception &e) {
        set_err(err, err_len, std::string("conv: ") + e.what());
        return FAILED;
    }
}

}  // extern "C"
