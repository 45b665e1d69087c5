// Batched CPU convolution (2-D and 3-D) and pooling for Paddle dygraph, through oneDNN (as PyTorch does on CPU).
//
// Paddle 3.3's CPU conv kernels loop over the batch one sample at a time (im2col, then a small GEMM
// per sample) and its pooling kernels are scalar loops; dygraph never selects its oneDNN kernels.
// These operators call oneDNN primitives on the whole batch instead. They link against the
// libdnnl.so.3 that the paddlepaddle wheel already ships (oneDNN keeps its ABI within major
// version 3); only the headers come from the onednn-devel package.
//
// Tensors stay in Paddle's plain NCHW / OIHW layout; each primitive may choose a blocked layout
// (format_tag::any) and the data are reordered in and out, which is what oneDNN recommends.

#include <oneapi/dnnl/dnnl_config.h>
// The onednn-devel headers are configured with the experimental sparse API, which Paddle's build of
// libdnnl.so.3 leaves out (its memory constructors call dnnl_memory_create_v2): use the stable API.
#undef DNNL_EXPERIMENTAL_SPARSE
#include <oneapi/dnnl/dnnl.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "paddle/extension.h"

// Threads for oneDNN. Paddle's process holds two OpenMP runtimes (Intel's libiomp5, which Paddle's
// libdnnl.so.3 binds to, and GNU's libgomp) and sets OMP_NUM_THREADS=1 when it is unset, so oneDNN
// would run on one thread. Each operator sets the count it was given, in every runtime present,
// on its own thread (the setting is per thread) before it creates or runs a primitive. 0 leaves
// the runtimes alone. Set from Python through pcnn_set_threads (ctypes).
static int g_threads = 0;
extern "C" void pcnn_set_threads(int n) { g_threads = n; }
extern "C" int pcnn_get_threads() { return g_threads; }
static void apply_threads() {
  typedef void (*SetThreads)(int);
  static std::vector<SetThreads> setters = [] {
    std::vector<SetThreads> found;
    for (const char* lib : {"libiomp5.so", "libgomp.so.1"}) {
      if (void* h = dlopen(lib, RTLD_NOLOAD | RTLD_LAZY)) {
        if (void* f = dlsym(h, "omp_set_num_threads")) found.push_back(reinterpret_cast<SetThreads>(f));
      }
    }
    return found;
  }();
  if (g_threads <= 0) return;
  for (auto set : setters) set(g_threads);
}

// The instruction set oneDNN runs on here (its highest one this CPU supports), by oneDNN's name:
// bf16 kernels exist from avx512_core_bf16 (native bf16 dot products) and AMX up.
extern "C" const char* pcnn_cpu_isa() {
  using isa = dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case isa::sse41: return "sse41";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx2_vnni: return "avx2_vnni";
    case isa::avx2_vnni_2: return "avx2_vnni_2";
    case isa::avx512_core: return "avx512_core";
    case isa::avx512_core_vnni: return "avx512_core_vnni";
    case isa::avx512_core_bf16: return "avx512_core_bf16";
    case isa::avx512_core_fp16: return "avx512_core_fp16";
    case isa::avx512_core_amx: return "avx512_core_amx";
    case isa::avx512_core_amx_fp16: return "avx512_core_amx_fp16";
    default: return "unknown";
  }
}

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dt dt_of(bool bf16) { return bf16 ? dt::bf16 : dt::f32; }

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Conv {
  int64_t n, ic, ih, iw, oc, kh, kw, oh, ow, groups;
  memory::dims strides, dilates, pad_l, pad_r;  // dilates as oneDNN counts them (0 = none)
};

Conv conv_geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w, const std::vector<int>& strides,
                   const std::vector<int>& paddings, const std::vector<int>& dilations, int groups) {
  // paddings: [top, bottom, left, right]
  Conv c;
  c.n = x[0]; c.ic = x[1]; c.ih = x[2]; c.iw = x[3];
  c.oc = w[0]; c.kh = w[2]; c.kw = w[3]; c.groups = groups;
  if (w[1] * groups != c.ic) PD_THROW("pcnn conv2d: weight channels do not match the input");
  int64_t ekh = (c.kh - 1) * dilations[0] + 1, ekw = (c.kw - 1) * dilations[1] + 1;
  c.oh = (c.ih + paddings[0] + paddings[1] - ekh) / strides[0] + 1;
  c.ow = (c.iw + paddings[2] + paddings[3] - ekw) / strides[1] + 1;
  if (c.oh <= 0 || c.ow <= 0) PD_THROW("pcnn conv2d: the window is larger than the padded input");
  c.strides = {strides[0], strides[1]};
  c.dilates = {dilations[0] - 1, dilations[1] - 1};
  c.pad_l = {paddings[0], paddings[2]};
  c.pad_r = {paddings[1], paddings[3]};
  return c;
}

memory::dims weight_dims(const Conv& c) {
  if (c.groups == 1) return {c.oc, c.ic, c.kh, c.kw};
  return {c.groups, c.oc / c.groups, c.ic / c.groups, c.kh, c.kw};
}
tag weight_tag(const Conv& c) { return c.groups == 1 ? tag::oihw : tag::goihw; }

// Primitives are cached by geometry: creating them is the costly part of a small operator. The key
// holds every dimension, the batch size too, because a oneDNN primitive is built for one shape (its
// kernels are generated for it); a run meets few shapes (the training batch, the last one of an
// epoch, the evaluation batch), but a process that predicts on varied inputs or tests random
// geometries meets many, so each cache keeps the kCacheEntries most recently used and frees the rest.
// An entry is shared: one evicted while another thread runs it lives until that call returns. The
// key also holds the thread count set for the operators: oneDNN splits a primitive's work for the
// threads it sees when the primitive is built, so one built before the count was set (a
// paddle.summary before the Trainer's setup) and run after gave other sums, and so other numbers.
constexpr size_t kCacheEntries = 128;
static std::atomic<long> g_cached{0};  // entries held by all the caches (pcnn_cached_primitives)
extern "C" long pcnn_cached_primitives() { return g_cached.load(); }

template <class Prims, class Make>
std::shared_ptr<Prims> cached(const std::string& shape_key, Make make) {
  static std::mutex mu;
  static std::list<std::pair<std::string, std::shared_ptr<Prims>>> order;  // most recently used first
  static std::unordered_map<std::string, typename decltype(order)::iterator> index;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = std::to_string(g_threads) + "|" + shape_key;
  auto it = index.find(key);
  if (it != index.end()) {
    order.splice(order.begin(), order, it->second);
    return it->second->second;
  }
  auto prims = std::make_shared<Prims>(make());  // make() may throw (a oneDNN error): then nothing is cached
  order.emplace_front(key, prims);
  index[key] = order.begin();
  ++g_cached;
  if (order.size() > kCacheEntries) {
    index.erase(order.back().first);
    order.pop_back();
    --g_cached;
  }
  return prims;
}

std::string key_of(std::initializer_list<int64_t> values) {
  std::string k;
  for (int64_t v : values) k += std::to_string(v) + ",";
  return k;
}

// ---------------------------------------------------------------- activations

// Paddle's CPU ReLU and Sigmoid run on one thread (Sigmoid with a scalar exp: 5x PyTorch's time on
// LeNet's maps). oneDNN's eltwise primitives are vectorised and threaded; the backward pass reads
// the output (the *_use_dst_for_bwd forms), so the input need not be kept.
dnnl::algorithm act_algorithm(const std::string& mode) {
  if (mode == "relu") return dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
  if (mode == "sigmoid") return dnnl::algorithm::eltwise_logistic_use_dst_for_bwd;
  PD_THROW("pcnn act: mode must be relu or sigmoid, not ", mode);
}

// A training convolution's fused activation ("none", "relu", "sigmoid") as a post-op attribute.
dnnl::primitive_attr act_post_op(const std::string& act) {
  dnnl::primitive_attr attr;
  if (act == "none") return attr;
  if (act != "relu" && act != "sigmoid") PD_THROW("pcnn conv: act must be none, relu or sigmoid, not ", act);
  dnnl::post_ops ops;
  ops.append_eltwise(act == "relu" ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
  attr.set_post_ops(ops);
  return attr;
}

struct ActPrims {
  dnnl::eltwise_forward::primitive_desc fwd;
  dnnl::eltwise_backward::primitive_desc bwd;
  dnnl::eltwise_forward fwd_prim;
  dnnl::eltwise_backward bwd_prim;
};

std::shared_ptr<ActPrims> act_prims(int64_t numel, const std::string& mode, bool bf16 = false) {
  auto alg = act_algorithm(mode);
  return cached<ActPrims>(key_of({numel, (int64_t)alg, (int64_t)bf16}), [&] {
    auto& eng = cpu_engine();
    memory::desc md({numel}, dt_of(bf16), tag::a);  // any shape, seen as its elements
    auto fwd = dnnl::eltwise_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, alg, md, md, 0.f, 0.f);
    auto bwd = dnnl::eltwise_backward::primitive_desc(eng, alg, md, md, md, 0.f, 0.f, fwd);
    return ActPrims{fwd, bwd, dnnl::eltwise_forward(fwd), dnnl::eltwise_backward(bwd)};
  });
}

// Who computes a 2-D convolution's weight gradient (dilated_weight_grad says why the GEMM).
enum class WeightGrad { onednn, dilated_gemm };
WeightGrad weight_grad_of(const Conv& c, bool bf16) {
  const bool dilated = c.dilates[0] > 0 || c.dilates[1] > 0;
  return !bf16 && c.groups == 1 && c.ic >= 8 && dilated ? WeightGrad::dilated_gemm : WeightGrad::onednn;
}

struct ConvPrims {
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights;
  dnnl::convolution_forward fwd_prim;
  dnnl::convolution_backward_data bwd_data_prim;
  dnnl::convolution_backward_weights bwd_weights_prim;
};

// bf16: compute in bf16; in_bf16 / out_bf16: the maps (and their gradients) Paddle holds are bf16.
std::shared_ptr<ConvPrims> conv_prims(const Conv& c, bool bias, const std::string& act, bool cl_in, bool cl_out,
                                      bool bf16, bool in_bf16 = false, bool out_bf16 = false) {
  PD_CHECK(bf16 || !(in_bf16 || out_bf16), "pcnn conv2d: bf16 maps need bf16 compute");
  auto key = key_of({c.n, c.ic, c.ih, c.iw, c.oc, c.kh, c.kw, c.groups, c.strides[0], c.strides[1], c.dilates[0],
                     c.dilates[1], c.pad_l[0], c.pad_l[1], c.pad_r[0], c.pad_r[1], (int64_t)bias, (int64_t)cl_in,
                     (int64_t)cl_out, (int64_t)bf16, (int64_t)in_bf16, (int64_t)out_bf16}) + act;
  return cached<ConvPrims>(key, [&] {
    const auto attr = act_post_op(act);
    auto& eng = cpu_engine();
    // With bf16 the convolution reads bf16 maps and weights (converted from Paddle's float32 ones as
    // they are reordered) and writes float32; the gradients it reads are bf16, those it writes float32.
    const dt lo = bf16 ? dt::bf16 : dt::f32;
    memory::desc src({c.n, c.ic, c.ih, c.iw}, lo, cl_in ? tag::nhwc : tag::any);
    memory::desc dsrc({c.n, c.ic, c.ih, c.iw}, dt_of(in_bf16), cl_in ? tag::nhwc : tag::any);
    memory::desc wei(weight_dims(c), lo, tag::any), dwei(weight_dims(c), dt::f32, tag::any);
    memory::desc dst({c.n, c.oc, c.oh, c.ow}, dt_of(out_bf16), cl_out ? tag::nhwc : tag::any);
    memory::desc ddst({c.n, c.oc, c.oh, c.ow}, lo, cl_out ? tag::nhwc : tag::any);
    memory::desc b({c.oc}, dt::f32, tag::x);
    auto fwd = bias ? dnnl::convolution_forward::primitive_desc(
                          eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei, b, dst,
                          c.strides, c.dilates, c.pad_l, c.pad_r, attr)
                    : dnnl::convolution_forward::primitive_desc(
                          eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei, dst,
                          c.strides, c.dilates, c.pad_l, c.pad_r, attr);
    auto bwd_data = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, dsrc, wei, ddst, c.strides, c.dilates, c.pad_l, c.pad_r, fwd);
    // A strided 1x1 kernel's weight gradient on NHWC maps (oneDNN's reduce-to-unit-stride 1x1 kernel)
    // crashed or hung for output channels that are not a multiple of 16 (3, 5, 7, 8 seen; oneDNN 3.6):
    // there oneDNN picks the layouts and the maps are reordered to them.
    const bool strided_1x1 = c.kh == 1 && c.kw == 1 && (c.strides[0] > 1 || c.strides[1] > 1);
    // A stem (fewer input channels than a vector block) on NCHW maps: the layouts oneDNN picks for its
    // weight gradient (aBcd16b) gave a gradient 0.1-0.7% off on an AVX-512 AMD EPYC (oneDNN 3.6.2,
    // mb3 ic1 oc16 28x28 3x3; sum |terms| 49, so fp32 rounding explains at most 0.007), while the
    // same stems on NHWC maps were exact there: the weight gradient reads NHWC maps (for ic 1 the
    // input's bytes are the same; only the output gradient is reordered, which a stem can afford).
    const bool narrow_stem = !strided_1x1 && c.ic < 16 && !(cl_in && cl_out);
    memory::desc wsrc = strided_1x1   ? memory::desc({c.n, c.ic, c.ih, c.iw}, lo, tag::any)
                        : narrow_stem ? memory::desc({c.n, c.ic, c.ih, c.iw}, lo, tag::nhwc)
                                      : src;
    memory::desc wdst = strided_1x1   ? memory::desc({c.n, c.oc, c.oh, c.ow}, lo, tag::any)
                        : narrow_stem ? memory::desc({c.n, c.oc, c.oh, c.ow}, lo, tag::nhwc)
                                      : ddst;
    ConvPrims prims{fwd, bwd_data, {}, dnnl::convolution_forward(fwd), dnnl::convolution_backward_data(bwd_data), {}};
    if (weight_grad_of(c, bf16) != WeightGrad::onednn) return prims;  // computed without oneDNN's primitive
    prims.bwd_weights = bias ? dnnl::convolution_backward_weights::primitive_desc(
                                  eng, dnnl::algorithm::convolution_direct, wsrc, dwei, b, wdst, c.strides, c.dilates,
                                  c.pad_l, c.pad_r, fwd)
                            : dnnl::convolution_backward_weights::primitive_desc(
                                  eng, dnnl::algorithm::convolution_direct, wsrc, dwei, wdst, c.strides, c.dilates,
                                  c.pad_l, c.pad_r, fwd);
    prims.bwd_weights_prim = dnnl::convolution_backward_weights(prims.bwd_weights);
    return prims;
  });
}

// A plain Paddle buffer seen as `want`: the buffer itself when the layouts agree, else a reorder of it.
memory as_input(dnnl::stream& s, const memory::desc& plain, const void* data, const memory::desc& want) {
  memory user(plain, cpu_engine(), const_cast<void*>(data));
  if (want == plain) return user;
  memory m(want, cpu_engine());
  dnnl::reorder(user, m).execute(s, user, m);
  return m;
}

// Where a primitive writes `produced`; call finish() to land it in the plain Paddle buffer.
struct Output {
  memory plain, mem;
  Output(const memory::desc& plain_md, void* data, const memory::desc& produced)
      : plain(plain_md, cpu_engine(), data), mem(produced == plain_md ? plain : memory(produced, cpu_engine())) {}
  void finish(dnnl::stream& s) {
    if (mem != plain) dnnl::reorder(mem, plain).execute(s, mem, plain);
  }
};

// A vector of n floats (biases, per-channel statistics) as oneDNN memory, in place.
memory vector_memory(const float* data, int64_t n) {
  return memory(memory::desc({n}, dt::f32, tag::x), cpu_engine(), const_cast<float*>(data));
}
memory per_channel(const paddle::Tensor& t) { return vector_memory(t.data<float>(), t.numel()); }

// Batch norm with fixed statistics as the per-channel affine map y = x * a[c] + b[c].
struct Affine {
  std::vector<float> a, b;
};
Affine norm_affine(const paddle::Tensor& mean, const paddle::Tensor& variance, const paddle::Tensor& scale,
                   const paddle::Tensor& shift, float epsilon) {
  const int64_t c = mean.numel();
  Affine f{std::vector<float>(c), std::vector<float>(c)};
  const float *m = mean.data<float>(), *v = variance.data<float>(), *g = scale.data<float>(), *h = shift.data<float>();
  for (int64_t i = 0; i < c; ++i) {
    f.a[i] = g[i] / std::sqrt(v[i] + epsilon);
    f.b[i] = h[i] - m[i] * f.a[i];
  }
  return f;
}

// oneDNN reports failures as C++ exceptions, which must not cross into Paddle's operator runner
// (it would abort the process): they become Paddle errors, which Python sees as exceptions.
template <class F>
auto guarded(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    PD_THROW("pcnn: oneDNN error: ", e.what());
  }
}

paddle::Tensor empty_like_shape(const std::vector<int64_t>& shape) {
  return paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
}

void check_cpu_f32(const paddle::Tensor& t, const char* name) {
  PD_CHECK(t.is_cpu(), "pcnn ops run on CPU tensors only (", name, ")");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, "pcnn ops take float32 only (", name, ")");
}

// Feature maps may be float32 or, inside a bf16 chain of operators (the maps one operator hands the
// next), bf16: half the bytes for the memory-bound pooling and activations, and no conversion at the
// next convolution, which reads bf16 anyway. Parameters, statistics and biases stay float32.
void check_cpu_maps(const paddle::Tensor& t, const char* name) {
  PD_CHECK(t.is_cpu(), "pcnn ops run on CPU tensors only (", name, ")");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32 || t.dtype() == paddle::DataType::BFLOAT16,
           "pcnn ops take float32 or bfloat16 maps only (", name, ")");
}
bool is_bf16(const paddle::Tensor& t) { return t.dtype() == paddle::DataType::BFLOAT16; }
paddle::Tensor empty_maps(const std::vector<int64_t>& shape, bool bf16) {
  return paddle::empty(shape, bf16 ? paddle::DataType::BFLOAT16 : paddle::DataType::FLOAT32, paddle::CPUPlace());
}

// The gradient through an activation ("relu", "sigmoid") from its output and the output's gradient:
// elementwise, so any layout; float32 or bf16 like the output. pcnn_act's backward and the
// convolutions' fused activations share it.
paddle::Tensor act_backward(dnnl::stream& s, const std::string& mode, const paddle::Tensor& out,
                            const paddle::Tensor& dout) {
  PD_CHECK(is_bf16(dout) == is_bf16(out), "pcnn: the output gradient's dtype differs from the output's");
  auto dx = empty_maps(out.shape(), is_bf16(out));
  if (out.numel() == 0) return dx;
  auto held = act_prims(out.numel(), mode, is_bf16(out));
  auto& p = *held;
  p.bwd_prim.execute(s, {{DNNL_ARG_DST, memory(p.bwd.dst_desc(), cpu_engine(), const_cast<void*>(out.data()))},
                         {DNNL_ARG_DIFF_DST, memory(p.bwd.diff_dst_desc(), cpu_engine(), const_cast<void*>(dout.data()))},
                         {DNNL_ARG_DIFF_SRC, memory(p.bwd.diff_src_desc(), cpu_engine(), dx.data())}});
  return dx;
}

// Channels-last tensors (channels_last_in/out): the tensor's shape is [N, H, W, C] and its data NHWC.
// oneDNN's convolutions on this machine choose NHWC for these maps, so a chain of operators that
// hands NHWC tensors on (a ResNet's stages) skips the reorders around each one: a third of oneDNN's
// time in resnet18_small's evaluation and 15% of a training step went to them.
std::vector<int64_t> nchw_of(const std::vector<int64_t>& shape, bool channels_last) {
  PD_CHECK(shape.size() == 4, "pcnn conv2d takes 4-D input");
  return channels_last ? std::vector<int64_t>{shape[0], shape[3], shape[1], shape[2]} : shape;
}

std::vector<int64_t> out_shape_of(const Conv& c, bool channels_last) {
  return channels_last ? std::vector<int64_t>{c.n, c.oh, c.ow, c.oc} : std::vector<int64_t>{c.n, c.oc, c.oh, c.ow};
}

memory::desc user_desc(const memory::dims& nchw, bool channels_last, bool bf16 = false) {
  return memory::desc(nchw, dt_of(bf16), channels_last ? tag::nhwc : tag::nchw);
}

// The input gradient of a convolution, 2-D or 3-D alike: the plain descs say how Paddle's buffers are
// laid out, the primitives pick their own layouts. Returns the output gradient as bwd_data read it,
// so the weight gradient can reuse that reorder when it wants the same layout.
memory data_backward(dnnl::stream& s, ConvPrims& p, const memory::desc& plain_src, const memory::desc& plain_wei,
                     const memory::desc& plain_dst, const paddle::Tensor& x, const paddle::Tensor& w,
                     const paddle::Tensor& dy, paddle::Tensor* dx) {
  *dx = empty_maps(x.shape(), is_bf16(x));  // the input's dtype (plain_src says which)
  auto ddst = as_input(s, plain_dst, dy.data(), p.bwd_data.diff_dst_desc());
  auto wei = as_input(s, plain_wei, w.data<float>(), p.bwd_data.weights_desc());
  Output dsrc(plain_src, dx->data(), p.bwd_data.diff_src_desc());
  p.bwd_data_prim.execute(s, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dsrc.mem}});
  dsrc.finish(s);
  return ddst;
}

// The output gradient in layout `want`: `have` (an earlier reorder of it, or an empty memory) when
// it already is, else a reorder of Paddle's buffer.
memory output_grad_as(dnnl::stream& s, const memory& have, const memory::desc& plain_dst, const paddle::Tensor& dy,
                      const memory::desc& want) {
  return have && have.get_desc() == want ? have : as_input(s, plain_dst, dy.data(), want);
}

// The weight and bias gradients by oneDNN's backward-weights primitive.
void onednn_weight_backward(dnnl::stream& s, ConvPrims& p, const memory::desc& plain_src,
                            const memory::desc& plain_wei, const memory::desc& plain_dst, const paddle::Tensor& x,
                            const paddle::Tensor& dy, const memory& ddst_have, float* dw, float* db, int64_t oc) {
  PD_CHECK(static_cast<bool>(p.bwd_weights_prim), "pcnn: no oneDNN weight-gradient primitive was built for this convolution");
  auto src = as_input(s, plain_src, x.data(), p.bwd_weights.src_desc());
  auto ddst = output_grad_as(s, ddst_have, plain_dst, dy, p.bwd_weights.diff_dst_desc());
  Output dwei(plain_wei, dw, p.bwd_weights.diff_weights_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, dwei.mem}};
  if (db != nullptr) args[DNNL_ARG_DIFF_BIAS] = vector_memory(db, oc);
  p.bwd_weights_prim.execute(s, args);
  dwei.finish(s);
}

// [dx] dw [db], in the order the Python side unpacks them.
std::vector<paddle::Tensor> gradients(bool need_dx, const paddle::Tensor& dx, const paddle::Tensor& dw, bool bias,
                                      const paddle::Tensor& db) {
  std::vector<paddle::Tensor> grads;
  if (need_dx) grads.push_back(dx);
  grads.push_back(dw);
  if (bias) grads.push_back(db);
  return grads;
}

// Writes the weight and bias (null without one) gradients, given the output gradient bwd_data read
// (an empty memory without that pass).
using WeightBackward = std::function<void(const memory& ddst, float* dw, float* db)>;

// The input gradient (unless ``need_dx`` is off: the first layer's input needs none, and its pass is
// costly for 1 channel) and the weight and bias gradients, by ``weights`` or else oneDNN's primitive.
std::vector<paddle::Tensor> run_backward(dnnl::stream& s, ConvPrims& p, const memory::desc& plain_src,
                                         const memory::desc& plain_wei, const memory::desc& plain_dst,
                                         const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& dy,
                                         bool bias, bool need_dx, int64_t oc, const WeightBackward& weights = {}) {
  paddle::Tensor dx, db;
  memory ddst;
  if (need_dx) ddst = data_backward(s, p, plain_src, plain_wei, plain_dst, x, w, dy, &dx);
  auto dw = empty_like_shape(w.shape());
  if (bias) db = empty_like_shape({oc});
  float* dbp = bias ? db.data<float>() : nullptr;
  if (weights)
    weights(ddst, dw.data<float>(), dbp);
  else
    onednn_weight_backward(s, p, plain_src, plain_wei, plain_dst, x, dy, ddst, dw.data<float>(), dbp, oc);
  s.wait();
  return gradients(need_dx, dx, dw, bias, db);
}

std::vector<paddle::Tensor> conv_forward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor* b,
                                         const std::vector<int>& strides, const std::vector<int>& paddings,
                                         const std::vector<int>& dilations, int groups, const std::string& act,
                                         bool cl_in, bool cl_out, bool bf16, bool bf16_out) {
  apply_threads();
  check_cpu_maps(x, "input");
  check_cpu_f32(w, "weight");
  auto c = conv_geometry(nchw_of(x.shape(), cl_in), w.shape(), strides, paddings, dilations, groups);
  auto held = conv_prims(c, b != nullptr, act, cl_in, cl_out, bf16, is_bf16(x), bf16_out);
  auto& p = *held;
  dnnl::stream s(cpu_engine());
  auto out = empty_maps(out_shape_of(c, cl_out), bf16_out);
  auto src = as_input(s, user_desc({c.n, c.ic, c.ih, c.iw}, cl_in, is_bf16(x)), x.data(), p.fwd.src_desc());
  auto wei = as_input(s, memory::desc(weight_dims(c), dt::f32, weight_tag(c)), w.data<float>(), p.fwd.weights_desc());
  Output dst(user_desc({c.n, c.oc, c.oh, c.ow}, cl_out, bf16_out), out.data(), p.fwd.dst_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst.mem}};
  if (b != nullptr) {
    check_cpu_f32(*b, "bias");
    args[DNNL_ARG_BIAS] = per_channel(*b);
  }
  p.fwd_prim.execute(s, args);
  dst.finish(s);
  s.wait();
  return {out};
}

// The weight (and bias) gradient of a dilated fp32 convolution as one GEMM over the whole batch:
// oneDNN has no direct kernel for it and falls back to im2col with one small GEMM per image
// (x64:gemm:jit: dilated_cnn's second layer 3.2 ms a step at batch 64 on one AVX2 EPYC thread,
// against 1.5 ms for the undilated layer's jit kernel; PyTorch runs the same fallback). Here the
// NHWC maps are unfolded into rows of KH*KW*IC taps, a few images at a time to bound the buffer,
// and dW^T (OC x KH*KW*IC) accumulates dy^T (OC x rows) times those rows in dnnl_sgemm.
// A stem of one or a few input channels keeps oneDNN's: its rows are a handful of taps, which the GEMM
// and the unfolding handle badly (dilated_cnn's 1-channel stem: 3.0 ms here against oneDNN's 1.4).
// Undilated convolutions keep oneDNN's direct kernels: on AVX2 the same GEMM made vgg11_small's 3x3
// weight gradients 35-50% faster in oneDNN's profile but resnet18_small's whole step 5% slower (the
// unfolding of its larger maps costs more than the kernel saves).
void dilated_weight_grad(dnnl::stream& s, const Conv& c, const memory::desc& plain_src, const memory::desc& plain_dst,
                         const paddle::Tensor& x, const paddle::Tensor& dy, const memory& ddst_have, float* dw,
                         float* db) {
  memory::desc nhwc_src({c.n, c.ic, c.ih, c.iw}, dt::f32, tag::nhwc), nhwc_dst({c.n, c.oc, c.oh, c.ow}, dt::f32, tag::nhwc);
  auto src = as_input(s, plain_src, x.data(), nhwc_src);
  auto ddst = output_grad_as(s, ddst_have, plain_dst, dy, nhwc_dst);
  s.wait();
  const float* xs = static_cast<const float*>(src.get_data_handle());
  const float* gs = static_cast<const float*>(ddst.get_data_handle());
  const int64_t taps = c.kh * c.kw * c.ic, plane = c.oh * c.ow;
  const int64_t per_chunk = std::max<int64_t>(1, (int64_t(1) << 21) / std::max<int64_t>(1, plane * taps));  // 8 MB
  std::vector<float> col(std::min(per_chunk, c.n) * plane * taps);
  std::vector<float> dwt(c.oc * taps, 0.f);  // [OC][KH][KW][IC]
  for (int64_t n0 = 0; n0 < c.n; n0 += per_chunk) {
    const int64_t n1 = std::min(c.n, n0 + per_chunk);
    float* row = col.data();
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t oh = 0; oh < c.oh; ++oh)
        for (int64_t ow = 0; ow < c.ow; ++ow)
          for (int64_t kh = 0; kh < c.kh; ++kh) {
            const int64_t ih = oh * c.strides[0] - c.pad_l[0] + kh * (c.dilates[0] + 1);
            for (int64_t kw = 0; kw < c.kw; ++kw, row += c.ic) {
              const int64_t iw = ow * c.strides[1] - c.pad_l[1] + kw * (c.dilates[1] + 1);
              if (ih < 0 || ih >= c.ih || iw < 0 || iw >= c.iw)
                std::fill(row, row + c.ic, 0.f);
              else
                std::memcpy(row, xs + ((n * c.ih + ih) * c.iw + iw) * c.ic, c.ic * sizeof(float));
            }
          }
    const int64_t rows = (n1 - n0) * plane;
    auto st = dnnl_sgemm('T', 'N', c.oc, taps, rows, 1.f, gs + n0 * plane * c.oc, c.oc, col.data(), taps,
                         n0 == 0 ? 0.f : 1.f, dwt.data(), taps);
    PD_CHECK(st == dnnl_success, "pcnn conv2d: dnnl_sgemm failed for the dilated weight gradient");
  }
  for (int64_t o = 0; o < c.oc; ++o)  // OHWI -> OIHW
    for (int64_t kh = 0; kh < c.kh; ++kh)
      for (int64_t kw = 0; kw < c.kw; ++kw)
        for (int64_t i = 0; i < c.ic; ++i)
          dw[((o * c.ic + i) * c.kh + kh) * c.kw + kw] = dwt[((o * c.kh + kh) * c.kw + kw) * c.ic + i];
  if (db != nullptr) {
    std::vector<double> sum(c.oc, 0.0);
    for (int64_t r = 0; r < c.n * plane; ++r)
      for (int64_t o = 0; o < c.oc; ++o) sum[o] += gs[r * c.oc + o];
    for (int64_t o = 0; o < c.oc; ++o) db[o] = static_cast<float>(sum[o]);
  }
}

std::vector<paddle::Tensor> conv_backward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& out,
                                          const paddle::Tensor& dout, bool bias, bool need_dx,
                                          const std::vector<int>& strides, const std::vector<int>& paddings,
                                          const std::vector<int>& dilations, int groups, const std::string& act,
                                          bool cl_in, bool cl_out, bool bf16, bool bf16_out) {
  apply_threads();
  auto c = conv_geometry(nchw_of(x.shape(), cl_in), w.shape(), strides, paddings, dilations, groups);
  const auto out_shape = out_shape_of(c, cl_out);
  PD_CHECK(dout.shape() == out_shape && out.shape() == out_shape,
           "pcnn conv2d: the output gradient's shape differs from the output's");
  PD_CHECK(is_bf16(dout) == bf16_out && is_bf16(out) == bf16_out, "pcnn conv2d: the output gradient's dtype differs");
  auto held = conv_prims(c, bias, act, cl_in, cl_out, bf16, is_bf16(x), bf16_out);
  auto& p = *held;
  dnnl::stream s(cpu_engine());
  const paddle::Tensor dy = act == "none" ? dout : act_backward(s, act, out, dout);  // through the fused activation
  const auto plain_src = user_desc({c.n, c.ic, c.ih, c.iw}, cl_in, is_bf16(x));
  const auto plain_dst = user_desc({c.n, c.oc, c.oh, c.ow}, cl_out, bf16_out);
  const auto plain_wei = memory::desc(weight_dims(c), dt::f32, weight_tag(c));
  WeightBackward weights;  // empty: oneDNN's primitive
  if (weight_grad_of(c, bf16) == WeightGrad::dilated_gemm)
    weights = [&](const memory& ddst, float* dw, float* db) {
      dilated_weight_grad(s, c, plain_src, plain_dst, x, dy, ddst, dw, db);
    };
  return run_backward(s, p, plain_src, plain_wei, plain_dst, x, w, dy, bias, need_dx, c.oc, weights);
}

std::vector<int64_t> conv_out_shape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                    const std::vector<int>& strides, const std::vector<int>& paddings,
                                    const std::vector<int>& dilations, int groups, bool cl_in, bool cl_out) {
  return out_shape_of(conv_geometry(nchw_of(x, cl_in), w, strides, paddings, dilations, groups), cl_out);
}

// ---------------------------------------------------------------- 3-D convolution (HybridSN)
//
// NCDHW maps and OIDHW weights, each map reordered in and out of oneDNN's preferred (blocked) layout as
// the 2-D convolutions without channels-last do; or channels-last maps (channels_last_in/out: the
// tensor is [N, D, H, W, C], NDHWC data), which the primitives read and write in place. Paddle 3.3's
// CPU Conv3D is vol2col and one GEMM per sample, which made HybridSN train at about half PyTorch's
// speed here. HybridSN's chain runs channels-last: the reorders between Paddle's plain maps and the
// blocked ones took 78 ms of a 455 ms training step (batch 64, Xeon), and the NDHWC weight-gradient
// kernel of its 8-channel layer is avx512 (21 ms) where the blocked one was 8-wide AVX2 (34 ms).

struct Conv3 {
  int64_t n, ic, id, ih, iw, oc, kd, kh, kw, od, oh, ow, groups;
  memory::dims strides, dilates, pad_l, pad_r;
};

// Checks every argument before any primitive is built (as PyTorch's check_shape_forward does): a bad
// attribute is a Paddle error naming it, never a oneDNN failure or a crash.
Conv3 conv3_geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w, const std::vector<int>& strides,
                     const std::vector<int>& paddings, const std::vector<int>& dilations, int groups) {
  PD_CHECK(x.size() == 5, "pcnn conv3d: input must be 5-D (N, C, D, H, W), got ", x.size(), "-D");
  PD_CHECK(w.size() == 5, "pcnn conv3d: weight must be 5-D (O, I/groups, kD, kH, kW), got ", w.size(), "-D");
  PD_CHECK(strides.size() == 3 && dilations.size() == 3 && paddings.size() == 6,
           "pcnn conv3d: strides and dilations take 3 values, paddings 6 (front, back, top, bottom, left, right)");
  for (int i = 0; i < 3; ++i) {
    PD_CHECK(strides[i] >= 1, "pcnn conv3d: strides must be >= 1");
    PD_CHECK(dilations[i] >= 1, "pcnn conv3d: dilations must be >= 1");
  }
  for (int p : paddings) PD_CHECK(p >= 0, "pcnn conv3d: paddings must be >= 0");
  PD_CHECK(groups >= 1 && x[1] % groups == 0 && w[0] % groups == 0,
           "pcnn conv3d: groups must divide the input and output channels");
  PD_CHECK(w[1] * groups == x[1], "pcnn conv3d: weight has ", w[1], " input channels per group, the input ", x[1],
           " channels in ", groups, " group(s)");
  Conv3 c;
  c.n = x[0]; c.ic = x[1]; c.id = x[2]; c.ih = x[3]; c.iw = x[4];
  c.oc = w[0]; c.kd = w[2]; c.kh = w[3]; c.kw = w[4]; c.groups = groups;
  const int64_t in[3] = {c.id, c.ih, c.iw}, k[3] = {c.kd, c.kh, c.kw};
  int64_t out[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t span = (k[i] - 1) * dilations[i] + 1;
    out[i] = (in[i] + paddings[2 * i] + paddings[2 * i + 1] - span) / strides[i] + 1;
    PD_CHECK(in[i] + paddings[2 * i] + paddings[2 * i + 1] >= span && out[i] >= 1,
             "pcnn conv3d: the window is larger than the padded input");
  }
  c.od = out[0]; c.oh = out[1]; c.ow = out[2];
  c.strides = {strides[0], strides[1], strides[2]};
  c.dilates = {dilations[0] - 1, dilations[1] - 1, dilations[2] - 1};
  c.pad_l = {paddings[0], paddings[2], paddings[4]};
  c.pad_r = {paddings[1], paddings[3], paddings[5]};
  return c;
}

memory::dims src3(const Conv3& c) { return {c.n, c.ic, c.id, c.ih, c.iw}; }
memory::dims dst3(const Conv3& c) { return {c.n, c.oc, c.od, c.oh, c.ow}; }
// The NCDHW dims of a tensor's shape ([N, D, H, W, C] when channels-last), and back.
std::vector<int64_t> ncdhw_of(const std::vector<int64_t>& shape, bool channels_last) {
  PD_CHECK(shape.size() == 5, "pcnn conv3d: input must be 5-D (N, C, D, H, W), got ", shape.size(), "-D");
  return channels_last ? std::vector<int64_t>{shape[0], shape[4], shape[1], shape[2], shape[3]} : shape;
}
std::vector<int64_t> shape3_of(const memory::dims& ncdhw, bool channels_last) {
  return channels_last ? std::vector<int64_t>{ncdhw[0], ncdhw[2], ncdhw[3], ncdhw[4], ncdhw[1]}
                       : std::vector<int64_t>(ncdhw.begin(), ncdhw.end());
}
// Channels-last maps of one channel are laid out as NCDHW ones: described as those.
memory::desc user3(const memory::dims& ncdhw, bool channels_last, bool bf16 = false) {
  return memory::desc(ncdhw, dt_of(bf16), channels_last && ncdhw[1] > 1 ? tag::ndhwc : tag::ncdhw);
}
memory::dims wei3(const Conv3& c) {
  if (c.groups == 1) return {c.oc, c.ic, c.kd, c.kh, c.kw};
  return {c.groups, c.oc / c.groups, c.ic / c.groups, c.kd, c.kh, c.kw};
}
memory::desc plain_wei3(const Conv3& c) {
  return memory::desc(wei3(c), dt::f32, c.groups == 1 ? tag::oidhw : tag::goidhw);
}

// ``relu`` fuses the ReLU that follows every HybridSN convolution as a post-op: one pass over the
// output instead of two (its maps are 100-200 MB at batch 256); the backward masks the incoming
// gradient with the saved output first (oneDNN's ReLU backward from dst). in_bf16 / out_bf16: the
// maps (and their gradients) Paddle holds are bf16, as in a 2-D chain: HybridSN's 3-D maps handed on
// in float32 cost a bf16 training step 110 of its 890 ms in oneDNN reorders and 50 in float32 ReLU
// gradients (one thread, AVX-512 EPYC).
std::shared_ptr<ConvPrims> conv3_prims(const Conv3& c, bool bias, bool relu, bool cl_in, bool cl_out, bool bf16,
                                       bool in_bf16 = false, bool out_bf16 = false) {
  PD_CHECK(bf16 || !(in_bf16 || out_bf16), "pcnn conv3d: bf16 maps need bf16 compute");
  auto key = key_of({3, c.n, c.ic, c.id, c.ih, c.iw, c.oc, c.kd, c.kh, c.kw, c.groups, c.strides[0], c.strides[1],
                     c.strides[2], c.dilates[0], c.dilates[1], c.dilates[2], c.pad_l[0], c.pad_l[1], c.pad_l[2],
                     c.pad_r[0], c.pad_r[1], c.pad_r[2], (int64_t)bias, (int64_t)relu, (int64_t)cl_in,
                     (int64_t)cl_out, (int64_t)bf16, (int64_t)in_bf16, (int64_t)out_bf16});
  return cached<ConvPrims>(key, [&] {
    auto& eng = cpu_engine();
    // One input channel (HybridSN's first layer) takes the blocked kernels whatever the layout asked:
    // oneDNN's brgemm kernel on NDHWC maps wrote wrong outputs for one input channel and a one-wide
    // strided output (found by the property test), and the blocked one was faster there (5 ms against
    // 10 for HybridSN's first layer at batch 64).
    const bool nxc_in = cl_in && c.ic > 1, nxc_out = cl_out && c.ic > 1;
    const dt lo = bf16 ? dt::bf16 : dt::f32;  // as for the 2-D convolution: bf16 read; maps in_bf16 / out_bf16
    const tag in_tag = nxc_in ? tag::ndhwc : tag::any, out_tag = nxc_out ? tag::ndhwc : tag::any;
    memory::desc src(src3(c), lo, in_tag), dsrc(src3(c), dt_of(in_bf16), in_tag), wei(wei3(c), lo, tag::any),
        dwei(wei3(c), dt::f32, tag::any), dst(dst3(c), dt_of(out_bf16), out_tag), ddst(dst3(c), lo, out_tag);
    memory::desc b({c.oc}, dt::f32, tag::x);
    const auto attr = act_post_op(relu ? "relu" : "none");
    auto fwd = bias ? dnnl::convolution_forward::primitive_desc(
                          eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei, b, dst,
                          c.strides, c.dilates, c.pad_l, c.pad_r, attr)
                    : dnnl::convolution_forward::primitive_desc(
                          eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei, dst,
                          c.strides, c.dilates, c.pad_l, c.pad_r, attr);
    auto bwd_data = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, dsrc, wei, ddst, c.strides, c.dilates, c.pad_l, c.pad_r, fwd);
    // The one-channel layer's bf16 weight gradient on the layouts left to oneDNN fell back to its
    // im2col GEMM on NCDHW maps (59 ms a step at batch 64, one AVX-512 EPYC thread); on the NDHWC
    // output gradient Paddle holds anyway, its jit_bf16 kernel takes 10 ms, and no map is reordered.
    const bool nxc_wgrad = bf16 && c.ic == 1 && cl_in && cl_out;
    const memory::desc wsrc = nxc_wgrad ? memory::desc(src3(c), lo, tag::ndhwc) : src;
    const memory::desc wdst = nxc_wgrad ? memory::desc(dst3(c), lo, tag::ndhwc) : ddst;
    auto bwd_weights = bias ? dnnl::convolution_backward_weights::primitive_desc(
                                  eng, dnnl::algorithm::convolution_direct, wsrc, dwei, b, wdst, c.strides, c.dilates,
                                  c.pad_l, c.pad_r, fwd)
                            : dnnl::convolution_backward_weights::primitive_desc(
                                  eng, dnnl::algorithm::convolution_direct, wsrc, dwei, wdst, c.strides, c.dilates,
                                  c.pad_l, c.pad_r, fwd);
    return ConvPrims{fwd, bwd_data, bwd_weights, dnnl::convolution_forward(fwd),
                     dnnl::convolution_backward_data(bwd_data), dnnl::convolution_backward_weights(bwd_weights)};
  });
}

std::vector<paddle::Tensor> conv3_forward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor* b,
                                          const std::vector<int>& strides, const std::vector<int>& paddings,
                                          const std::vector<int>& dilations, int groups, bool relu, bool cl_in,
                                          bool cl_out, bool bf16, bool bf16_out) {
  apply_threads();
  check_cpu_maps(x, "input");
  check_cpu_f32(w, "weight");
  auto c = conv3_geometry(ncdhw_of(x.shape(), cl_in), w.shape(), strides, paddings, dilations, groups);
  if (b != nullptr) {
    check_cpu_f32(*b, "bias");
    PD_CHECK(b->numel() == c.oc, "pcnn conv3d: bias has ", b->numel(), " values for ", c.oc, " output channels");
  }
  auto held = conv3_prims(c, b != nullptr, relu, cl_in, cl_out, bf16, is_bf16(x), bf16_out);
  auto& p = *held;
  dnnl::stream s(cpu_engine());
  auto out = empty_maps(shape3_of(dst3(c), cl_out), bf16_out);
  auto src = as_input(s, user3(src3(c), cl_in, is_bf16(x)), x.data(), p.fwd.src_desc());
  auto wei = as_input(s, plain_wei3(c), w.data<float>(), p.fwd.weights_desc());
  Output dst(user3(dst3(c), cl_out, bf16_out), out.data(), p.fwd.dst_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst.mem}};
  if (b != nullptr) args[DNNL_ARG_BIAS] = per_channel(*b);
  p.fwd_prim.execute(s, args);
  dst.finish(s);
  s.wait();
  return {out};
}

std::vector<paddle::Tensor> conv3_backward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& out,
                                           const paddle::Tensor& dout, bool bias, bool need_dx,
                                           const std::vector<int>& strides, const std::vector<int>& paddings,
                                           const std::vector<int>& dilations, int groups, bool relu, bool cl_in,
                                           bool cl_out, bool bf16, bool bf16_out) {
  apply_threads();
  auto c = conv3_geometry(ncdhw_of(x.shape(), cl_in), w.shape(), strides, paddings, dilations, groups);
  check_cpu_maps(dout, "output gradient");
  const auto out_shape = shape3_of(dst3(c), cl_out);
  PD_CHECK(dout.shape() == out_shape && out.shape() == out_shape,
           "pcnn conv3d: the output gradient's shape differs from the output's");
  PD_CHECK(is_bf16(dout) == bf16_out && is_bf16(out) == bf16_out, "pcnn conv3d: the output gradient's dtype differs");
  auto held = conv3_prims(c, bias, relu, cl_in, cl_out, bf16, is_bf16(x), bf16_out);
  auto& p = *held;
  dnnl::stream s(cpu_engine());
  const paddle::Tensor dy = relu ? act_backward(s, "relu", out, dout) : dout;  // zero where the output is
  return run_backward(s, p, user3(src3(c), cl_in, is_bf16(x)), plain_wei3(c), user3(dst3(c), cl_out, bf16_out), x, w,
                      dy, bias, need_dx, c.oc);
}

// ---------------------------------------------------------------- pooling

struct Pool {
  int64_t n, c, ih, iw, oh, ow;
  memory::dims kernel, strides, pad_l, pad_r;
  dnnl::algorithm alg;
  bool cl;  // NHWC tensors ([N, H, W, C]) in and out, as a channels-last chain hands them on
  bool bf16;  // bf16 maps in and out (and their gradients)

  std::vector<int64_t> out_shape() const { return cl ? std::vector<int64_t>{n, oh, ow, c} : std::vector<int64_t>{n, c, oh, ow}; }
};

Pool pool_geometry(const std::vector<int64_t>& x, const std::vector<int>& kernel, const std::vector<int>& strides,
                   const std::vector<int>& paddings, const std::string& mode, bool channels_last,
                   bool bf16 = false) {
  Pool p;
  if (x.size() != 4) PD_THROW("pcnn pool2d: the input must be 4-D, got rank ", x.size());
  p.cl = channels_last;
  p.bf16 = bf16;
  p.n = x[0];
  if (channels_last) { p.ih = x[1]; p.iw = x[2]; p.c = x[3]; }
  else { p.c = x[1]; p.ih = x[2]; p.iw = x[3]; }
  p.oh = (p.ih + paddings[0] + paddings[1] - kernel[0]) / strides[0] + 1;
  p.ow = (p.iw + paddings[2] + paddings[3] - kernel[1]) / strides[1] + 1;
  if (p.ih + paddings[0] + paddings[1] < kernel[0] || p.iw + paddings[2] + paddings[3] < kernel[1])
    PD_THROW("pcnn pool2d: the window is larger than the padded input");
  p.kernel = {kernel[0], kernel[1]};
  p.strides = {strides[0], strides[1]};
  p.pad_l = {paddings[0], paddings[2]};
  p.pad_r = {paddings[1], paddings[3]};
  if (mode == "max") p.alg = dnnl::algorithm::pooling_max;
  else if (mode == "avg_exclusive") p.alg = dnnl::algorithm::pooling_avg_exclude_padding;
  else if (mode == "avg_inclusive") p.alg = dnnl::algorithm::pooling_avg_include_padding;
  else PD_THROW("pcnn pool2d: mode must be max, avg_exclusive or avg_inclusive");
  return p;
}

struct PoolPrims {
  dnnl::pooling_forward::primitive_desc fwd;
  dnnl::pooling_backward::primitive_desc bwd;
  dnnl::pooling_forward fwd_prim;
  dnnl::pooling_backward bwd_prim;
};

std::shared_ptr<PoolPrims> pool_prims(const Pool& q) {
  auto key = key_of({q.n, q.c, q.ih, q.iw, q.kernel[0], q.kernel[1], q.strides[0], q.strides[1], q.pad_l[0],
                     q.pad_l[1], q.pad_r[0], q.pad_r[1], (int64_t)q.alg, (int64_t)q.cl, (int64_t)q.bf16});
  return cached<PoolPrims>(key, [&] {
    auto& eng = cpu_engine();
    // The tensors' own layouts: pooling is memory-bound, and a reorder would cost as much as the pooling.
    auto layout = q.cl ? tag::nhwc : tag::nchw;
    memory::desc src({q.n, q.c, q.ih, q.iw}, dt_of(q.bf16), layout);
    memory::desc dst({q.n, q.c, q.oh, q.ow}, dt_of(q.bf16), layout);
    memory::dims no_dilation = {0, 0};
    auto fwd = dnnl::pooling_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, q.alg, src, dst, q.strides,
                                                     q.kernel, no_dilation, q.pad_l, q.pad_r);
    auto bwd = dnnl::pooling_backward::primitive_desc(eng, q.alg, src, dst, q.strides, q.kernel, no_dilation, q.pad_l,
                                                      q.pad_r, fwd);
    return PoolPrims{fwd, bwd, dnnl::pooling_forward(fwd), dnnl::pooling_backward(bwd)};
  });
}

// ---------------------------------------------------------------- batch norm with running statistics

// Paddle's CPU batch norm with running statistics (evaluation, prediction) runs on one thread: twice
// PyTorch's time on ResNet's maps, and oneDNN's own batch norm on plain NCHW was slower still. With
// the statistics fixed it is a per-channel affine map, y = x * a[c] + b[c]: one oneDNN binary
// multiply with a fused binary add, vectorised and threaded. No gradient: the layer uses it only
// outside autograd (paddle.no_grad, which evaluation and prediction run under).
struct AffinePrims {
  dnnl::binary::primitive_desc pd;
  dnnl::binary prim;
};

std::shared_ptr<AffinePrims> affine_prims(const std::vector<int64_t>& shape) {
  return cached<AffinePrims>(key_of({shape[0], shape[1], shape[2], shape[3]}), [&] {
    memory::desc md({shape[0], shape[1], shape[2], shape[3]}, dt::f32, tag::nchw);
    memory::desc channel_md({1, shape[1], 1, 1}, dt::f32, tag::nchw);
    dnnl::post_ops post;
    post.append_binary(dnnl::algorithm::binary_add, channel_md);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post);
    auto pd = dnnl::binary::primitive_desc(cpu_engine(), dnnl::algorithm::binary_mul, md, channel_md, md, attr);
    return AffinePrims{pd, dnnl::binary(pd)};
  });
}

}  // namespace

// ---------------------------------------------------------------- Paddle operators

// act: "none", or "relu" / "sigmoid" fused as a post-op (its gradient taken from the output).
#define CONV_ATTRS {"strides: std::vector<int>", "paddings: std::vector<int>", "dilations: std::vector<int>", \
                    "groups: int", "act: std::string", "channels_last_in: bool", "channels_last_out: bool", \
                    "bf16: bool", "bf16_out: bool"}
// bf16: compute in bf16; bf16_out: write bf16 maps (for the next operator of a chain), else float32.
#define CONV2_ARGS                                                                                     \
  const std::vector<int>&strides, const std::vector<int>&paddings, const std::vector<int>&dilations, int groups, \
      const std::string &act, bool cl_in, bool cl_out, bool bf16, bool bf16_out
#define CONV2_PASS strides, paddings, dilations, groups, act, cl_in, cl_out, bf16, bf16_out

std::vector<paddle::Tensor> ConvFwd(const paddle::Tensor& x, const paddle::Tensor& w, CONV2_ARGS) {
  return guarded([&] { return conv_forward(x, w, nullptr, CONV2_PASS); });
}
std::vector<paddle::Tensor> ConvBiasFwd(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                        CONV2_ARGS) {
  return guarded([&] { return conv_forward(x, w, &b, CONV2_PASS); });
}

// Backward kernels: with or without bias, with or without the input's gradient.
template <bool kBias, bool kDx>
struct ConvBwd;
template <bool kDx>
struct ConvBwd<false, kDx> {
  static std::vector<paddle::Tensor> run(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& out,
                                         const paddle::Tensor& dy, CONV2_ARGS) {
    return guarded([&] { return conv_backward(x, w, out, dy, false, kDx, CONV2_PASS); });
  }
};
template <bool kDx>
struct ConvBwd<true, kDx> {
  static std::vector<paddle::Tensor> run(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                         const paddle::Tensor& out, const paddle::Tensor& dy, CONV2_ARGS) {
    return guarded([&] { return conv_backward(x, w, out, dy, true, kDx, CONV2_PASS); });
  }
};

std::vector<std::vector<int64_t>> ConvShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                            CONV2_ARGS) {
  return {conv_out_shape(x, w, strides, paddings, dilations, groups, cl_in, cl_out)};
}
std::vector<std::vector<int64_t>> ConvBiasShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                const std::vector<int64_t>& b, CONV2_ARGS) {
  return {conv_out_shape(x, w, strides, paddings, dilations, groups, cl_in, cl_out)};
}
std::vector<paddle::DataType> F32(const paddle::DataType& x, const paddle::DataType& w) { return {x}; }
std::vector<paddle::DataType> F32Bias(const paddle::DataType& x, const paddle::DataType& w, const paddle::DataType& b) {
  return {x};
}

// A convolution operator and its gradient operator (2-D and 3-D alike; ATTRS differ).
#define CONV_OP(ATTRS, NAME, INPUTS, FWD, SHAPE, DTYPE, GRAD_INPUTS, GRAD_OUTPUTS, BWD) \
  PD_BUILD_OP(NAME)                                                                     \
      .Inputs(INPUTS)                                                                   \
      .Outputs({"Out"})                                                                 \
      .Attrs(ATTRS)                                                                     \
      .SetKernelFn(PD_KERNEL(FWD))                                                      \
      .SetInferShapeFn(PD_INFER_SHAPE(SHAPE))                                           \
      .SetInferDtypeFn(PD_INFER_DTYPE(DTYPE));                                          \
  PD_BUILD_GRAD_OP(NAME)                                                                \
      .Inputs(GRAD_INPUTS)                                                              \
      .Outputs(GRAD_OUTPUTS)                                                            \
      .Attrs(ATTRS)                                                                     \
      .SetKernelFn(PD_KERNEL(BWD));

// pcnn_conv2d[_bias]: gradients for the input and the parameters; *_wgrad: for the parameters only.
#define LIST(...) {__VA_ARGS__}
CONV_OP(CONV_ATTRS, pcnn_conv2d, LIST("X", "W"), ConvFwd, ConvShape, F32, LIST("X", "W", "Out", paddle::Grad("Out")),
        LIST(paddle::Grad("X"), paddle::Grad("W")), (ConvBwd<false, true>::run))
CONV_OP(CONV_ATTRS, pcnn_conv2d_wgrad, LIST("X", "W"), ConvFwd, ConvShape, F32,
        LIST("X", "W", "Out", paddle::Grad("Out")), LIST(paddle::Grad("W")), (ConvBwd<false, false>::run))
CONV_OP(CONV_ATTRS, pcnn_conv2d_bias, LIST("X", "W", "B"), ConvBiasFwd, ConvBiasShape, F32Bias,
        LIST("X", "W", "B", "Out", paddle::Grad("Out")), LIST(paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")),
        (ConvBwd<true, true>::run))
CONV_OP(CONV_ATTRS, pcnn_conv2d_bias_wgrad, LIST("X", "W", "B"), ConvBiasFwd, ConvBiasShape, F32Bias,
        LIST("X", "W", "B", "Out", paddle::Grad("Out")), LIST(paddle::Grad("W"), paddle::Grad("B")),
        (ConvBwd<true, false>::run))

#define CONV3_ATTRS {"strides: std::vector<int>", "paddings: std::vector<int>", "dilations: std::vector<int>", \
                     "groups: int", "relu: bool", "channels_last_in: bool", "channels_last_out: bool", \
                     "bf16: bool", "bf16_out: bool"}

#define CONV3_ARGS                                                                                     \
  const std::vector<int>&strides, const std::vector<int>&paddings, const std::vector<int>&dilations, int groups, \
      bool relu, bool cl_in, bool cl_out, bool bf16, bool bf16_out
#define CONV3_PASS strides, paddings, dilations, groups, relu, cl_in, cl_out, bf16, bf16_out

std::vector<paddle::Tensor> Conv3Fwd(const paddle::Tensor& x, const paddle::Tensor& w, CONV3_ARGS) {
  return guarded([&] { return conv3_forward(x, w, nullptr, CONV3_PASS); });
}
std::vector<paddle::Tensor> Conv3BiasFwd(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                         CONV3_ARGS) {
  return guarded([&] { return conv3_forward(x, w, &b, CONV3_PASS); });
}
template <bool kDx>
std::vector<paddle::Tensor> Conv3Bwd(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& out,
                                     const paddle::Tensor& dout, CONV3_ARGS) {
  return guarded([&] { return conv3_backward(x, w, out, dout, false, kDx, CONV3_PASS); });
}
template <bool kDx>
std::vector<paddle::Tensor> Conv3BiasBwd(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                         const paddle::Tensor& out, const paddle::Tensor& dout, CONV3_ARGS) {
  return guarded([&] { return conv3_backward(x, w, out, dout, true, kDx, CONV3_PASS); });
}
std::vector<std::vector<int64_t>> Conv3Shape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                             CONV3_ARGS) {
  auto c = conv3_geometry(ncdhw_of(x, cl_in), w, strides, paddings, dilations, groups);
  return {shape3_of(dst3(c), cl_out)};
}
std::vector<std::vector<int64_t>> Conv3BiasShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                 const std::vector<int64_t>& b, CONV3_ARGS) {
  return Conv3Shape(x, w, CONV3_PASS);
}

CONV_OP(CONV3_ATTRS, pcnn_conv3d, LIST("X", "W"), Conv3Fwd, Conv3Shape, F32,
        LIST("X", "W", "Out", paddle::Grad("Out")),
        LIST(paddle::Grad("X"), paddle::Grad("W")), Conv3Bwd<true>)
CONV_OP(CONV3_ATTRS, pcnn_conv3d_wgrad, LIST("X", "W"), Conv3Fwd, Conv3Shape, F32,
        LIST("X", "W", "Out", paddle::Grad("Out")),
        LIST(paddle::Grad("W")), Conv3Bwd<false>)
CONV_OP(CONV3_ATTRS, pcnn_conv3d_bias, LIST("X", "W", "B"), Conv3BiasFwd, Conv3BiasShape, F32Bias,
        LIST("X", "W", "B", "Out", paddle::Grad("Out")),
        LIST(paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")), Conv3BiasBwd<true>)
CONV_OP(CONV3_ATTRS, pcnn_conv3d_bias_wgrad, LIST("X", "W", "B"), Conv3BiasFwd, Conv3BiasShape, F32Bias,
        LIST("X", "W", "B", "Out", paddle::Grad("Out")), LIST(paddle::Grad("W"), paddle::Grad("B")),
        Conv3BiasBwd<false>)

// ---------------------------------------------------------------- pcnn_fold_depth
//
// HybridSN folds its last 3-D maps (N, C, D, H, W) into the C*D channels of a 2-D convolution (channel
// c*D + d, what reshape gives on NCDHW). pcnn_fold_depth does it from channels-last 3-D maps
// ([N, D, H, W, C]) to channels-last 2-D ones ([N, H, W, C*D]) as one oneDNN reorder, since strides
// express both layouts: 2.7 ms for HybridSN's 64x32x18x19x19 maps, against 18.6 ms for Paddle's
// transpose.

memory::desc folded_desc(const memory::dims& ncdhw, bool bf16) {
  const int64_t c = ncdhw[1], d = ncdhw[2], h = ncdhw[3], w = ncdhw[4];
  return memory::desc(ncdhw, dt_of(bf16), memory::dims{h * w * c * d, d, 1, w * c * d, c * d});
}

void reorder_into(const memory::desc& from, const void* src, const memory::desc& to, void* dst) {
  dnnl::stream s(cpu_engine());
  memory a(from, cpu_engine(), const_cast<void*>(src)), b(to, cpu_engine(), dst);
  dnnl::reorder(a, b).execute(s, a, b);
  s.wait();
}

std::vector<paddle::Tensor> FoldFwd(const paddle::Tensor& x) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "input");
    const auto dims = ncdhw_of(x.shape(), true);
    const bool bf16 = is_bf16(x);  // the maps of a bf16 chain stay bf16
    auto out = empty_maps({dims[0], dims[3], dims[4], dims[1] * dims[2]}, bf16);
    reorder_into(user3(dims, true, bf16), x.data(), folded_desc(dims, bf16), out.data());
    return {out};
  });
}
std::vector<paddle::Tensor> FoldBwd(const paddle::Tensor& x, const paddle::Tensor& dout) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    const auto dims = ncdhw_of(x.shape(), true);
    check_cpu_maps(dout, "output gradient");
    PD_CHECK(dout.shape() == std::vector<int64_t>({dims[0], dims[3], dims[4], dims[1] * dims[2]}),
             "pcnn fold_depth: the output gradient's shape differs from the output's");
    PD_CHECK(is_bf16(dout) == is_bf16(x), "pcnn fold_depth: the output gradient's dtype differs from the input's");
    const bool bf16 = is_bf16(x);
    auto dx = empty_maps(x.shape(), bf16);
    reorder_into(folded_desc(dims, bf16), dout.data(), user3(dims, true, bf16), dx.data());
    return {dx};
  });
}
std::vector<std::vector<int64_t>> FoldShape(const std::vector<int64_t>& x) {
  const auto dims = ncdhw_of(x, true);
  return {{dims[0], dims[3], dims[4], dims[1] * dims[2]}};
}
// One input, one output of its dtype (the fold, the activations).
std::vector<paddle::DataType> SameDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(pcnn_fold_depth)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(FoldFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(FoldShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SameDtype));
PD_BUILD_GRAD_OP(pcnn_fold_depth)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(FoldBwd));

#define POOL_ATTRS {"kernel: std::vector<int>", "strides: std::vector<int>", "paddings: std::vector<int>", \
                    "mode: std::string", "channels_last: bool"}

std::vector<paddle::Tensor> PoolFwd(const paddle::Tensor& x, const std::vector<int>& kernel,
                                    const std::vector<int>& strides, const std::vector<int>& paddings,
                                    const std::string& mode, bool channels_last) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "input");
    auto q = pool_geometry(x.shape(), kernel, strides, paddings, mode, channels_last, is_bf16(x));
    auto held = pool_prims(q);
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    auto out = empty_maps(q.out_shape(), q.bf16);
    // Max pooling's workspace (where each maximum came from) is an output, for the backward pass.
    auto ws_md = p.fwd.workspace_desc();
    auto ws = paddle::empty({std::max<int64_t>(1, (int64_t)ws_md.get_size())}, paddle::DataType::UINT8,
                            paddle::CPUPlace());
    memory src(p.fwd.src_desc(), cpu_engine(), const_cast<void*>(x.data()));
    memory dst(p.fwd.dst_desc(), cpu_engine(), out.data());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
    if (ws_md.get_size() > 0) args[DNNL_ARG_WORKSPACE] = memory(ws_md, cpu_engine(), ws.data<uint8_t>());
    p.fwd_prim.execute(s, args);
    s.wait();
    return {out, ws};
  });
}

std::vector<paddle::Tensor> PoolBwd(const paddle::Tensor& x, const paddle::Tensor& ws, const paddle::Tensor& dy,
                                    const std::vector<int>& kernel, const std::vector<int>& strides,
                                    const std::vector<int>& paddings, const std::string& mode, bool channels_last) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    auto q = pool_geometry(x.shape(), kernel, strides, paddings, mode, channels_last, is_bf16(x));
    PD_CHECK(is_bf16(dy) == q.bf16, "pcnn pool2d: the output gradient's dtype differs from the input's");
    auto held = pool_prims(q);
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    auto dx = empty_maps(x.shape(), q.bf16);
    memory ddst(p.bwd.diff_dst_desc(), cpu_engine(), const_cast<void*>(dy.data()));
    memory dsrc(p.bwd.diff_src_desc(), cpu_engine(), dx.data());
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}};
    auto ws_md = p.fwd.workspace_desc();
    if (ws_md.get_size() > 0)
      args[DNNL_ARG_WORKSPACE] = memory(ws_md, cpu_engine(), const_cast<uint8_t*>(ws.data<uint8_t>()));
    p.bwd_prim.execute(s, args);
    s.wait();
    return {dx};
  });
}

std::vector<std::vector<int64_t>> PoolShape(const std::vector<int64_t>& x, const std::vector<int>& kernel,
                                            const std::vector<int>& strides, const std::vector<int>& paddings,
                                            const std::string& mode, bool channels_last) {
  return guarded([&]() -> std::vector<std::vector<int64_t>> {
    apply_threads();
    auto q = pool_geometry(x, kernel, strides, paddings, mode, channels_last);
    auto held = pool_prims(q);
    auto& p = *held;
    return {q.out_shape(), {std::max<int64_t>(1, (int64_t)p.fwd.workspace_desc().get_size())}};
  });
}
std::vector<paddle::DataType> PoolDtype(const paddle::DataType& x) { return {x, paddle::DataType::UINT8}; }

PD_BUILD_OP(pcnn_pool2d)
    .Inputs({"X"})
    .Outputs({"Out", "Workspace"})
    .Attrs(POOL_ATTRS)
    .SetKernelFn(PD_KERNEL(PoolFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(PoolShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(PoolDtype));

PD_BUILD_GRAD_OP(pcnn_pool2d)
    .Inputs({"X", "Workspace", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs(POOL_ATTRS)
    .SetKernelFn(PD_KERNEL(PoolBwd));

// ---------------------------------------------------------------- pcnn_act: relu, sigmoid

std::vector<paddle::Tensor> ActFwd(const paddle::Tensor& x, const std::string& mode) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "input");
    auto out = empty_maps(x.shape(), is_bf16(x));
    if (x.numel() == 0) return {out};
    auto held = act_prims(x.numel(), mode, is_bf16(x));
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    memory src(p.fwd.src_desc(), cpu_engine(), const_cast<void*>(x.data()));
    memory dst(p.fwd.dst_desc(), cpu_engine(), out.data());
    p.fwd_prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    s.wait();
    return {out};
  });
}

std::vector<paddle::Tensor> ActBwd(const paddle::Tensor& out, const paddle::Tensor& dout, const std::string& mode) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    dnnl::stream s(cpu_engine());
    auto dx = act_backward(s, mode, out, dout);
    s.wait();
    return {dx};
  });
}

std::vector<std::vector<int64_t>> ActShape(const std::vector<int64_t>& x, const std::string& mode) { return {x}; }

PD_BUILD_OP(pcnn_act)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"mode: std::string"})
    .SetKernelFn(PD_KERNEL(ActFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(ActShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SameDtype));

PD_BUILD_GRAD_OP(pcnn_act)
    .Inputs({"Out", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"mode: std::string"})
    .SetKernelFn(PD_KERNEL(ActBwd));

// ---------------------------------------------------------------- pcnn_batch_norm_infer

std::vector<paddle::Tensor> NormInferFwd(const paddle::Tensor& x, const paddle::Tensor& mean,
                                         const paddle::Tensor& variance, const paddle::Tensor& scale,
                                         const paddle::Tensor& bias, float epsilon) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_f32(x, "input");
    for (auto* t : {&mean, &variance, &scale, &bias}) check_cpu_f32(*t, "statistics and parameters");
    PD_CHECK(x.shape().size() == 4, "pcnn batch norm takes NCHW input");
    const int64_t c = x.shape()[1];
    for (auto* t : {&mean, &variance, &scale, &bias}) PD_CHECK(t->numel() == c, "pcnn batch norm: one value per channel");
    auto out = empty_like_shape(x.shape());
    if (x.numel() == 0) return {out};
    const auto f = norm_affine(mean, variance, scale, bias, epsilon);
    auto held = affine_prims(x.shape());
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    memory::desc channel_md({1, c, 1, 1}, dt::f32, tag::nchw);
    memory src(p.pd.src0_desc(), cpu_engine(), const_cast<float*>(x.data<float>()));
    memory dst(p.pd.dst_desc(), cpu_engine(), out.data<float>());
    p.prim.execute(s, {{DNNL_ARG_SRC_0, src},
                       {DNNL_ARG_SRC_1, memory(channel_md, cpu_engine(), const_cast<float*>(f.a.data()))},
                       {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                        memory(channel_md, cpu_engine(), const_cast<float*>(f.b.data()))},
                       {DNNL_ARG_DST, dst}});
    s.wait();
    return {out};
  });
}

std::vector<std::vector<int64_t>> NormInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& mean,
                                                 const std::vector<int64_t>& variance,
                                                 const std::vector<int64_t>& scale, const std::vector<int64_t>& bias,
                                                 float epsilon) {
  return {x};
}
std::vector<paddle::DataType> NormInferDtype(const paddle::DataType& x, const paddle::DataType& mean,
                                             const paddle::DataType& variance, const paddle::DataType& scale,
                                             const paddle::DataType& bias) {
  return {x};
}

PD_BUILD_OP(pcnn_batch_norm_infer)
    .Inputs({"X", "Mean", "Variance", "Scale", "Bias"})
    .Outputs({"Out"})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(NormInferFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(NormInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NormInferDtype));

// ---------------------------------------------------------------- pcnn_conv_infer

// Inference only (no autograd): a convolution with an optional batch norm (running statistics), an
// optional residual add and an optional ReLU, in one oneDNN primitive. The norm is folded into the
// convolution (w' = w * a[o], b' = b * a + shift - mean * a with a = scale / sqrt(var + eps)); the
// residual and the ReLU are post-ops, so none of them is a separate pass over the output (ResNet's
// blocks spent a fifth of evaluation in those passes). channels_last_in/out as for pcnn_conv2d.
struct InferPrims {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
};

enum Residual { kNone = 0, kSum = 1, kBinary = 2 };

std::shared_ptr<InferPrims> infer_prims(const Conv& c, bool cl_in, bool cl_out, int residual, bool relu, bool bf16,
                                        bool bf16_out) {
  auto key = key_of({c.n, c.ic, c.ih, c.iw, c.oc, c.kh, c.kw, c.groups, c.strides[0], c.strides[1], c.dilates[0],
                     c.dilates[1], c.pad_l[0], c.pad_l[1], c.pad_r[0], c.pad_r[1], (int64_t)cl_in, (int64_t)cl_out,
                     (int64_t)residual, (int64_t)relu, (int64_t)bf16, (int64_t)bf16_out});
  return cached<InferPrims>(key, [&] {
    // bf16: the maps and (folded) weights read in bf16; float32 out, or bf16 for the next operator of a chain
    const dt lo = bf16 ? dt::bf16 : dt::f32;
    memory::desc src({c.n, c.ic, c.ih, c.iw}, lo, cl_in ? tag::nhwc : tag::any);
    memory::desc wei(weight_dims(c), lo, tag::any);
    memory::desc dst({c.n, c.oc, c.oh, c.ow}, dt_of(bf16_out), cl_out ? tag::nhwc : tag::any);
    memory::desc b({c.oc}, dt::f32, tag::x);
    dnnl::post_ops post;
    if (residual == kSum) post.append_sum(1.f);
    if (residual == kBinary) post.append_binary(dnnl::algorithm::binary_add, dst);
    if (relu) post.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post);
    auto pd = dnnl::convolution_forward::primitive_desc(cpu_engine(), dnnl::prop_kind::forward_inference,
                                                        dnnl::algorithm::convolution_direct, src, wei, b, dst,
                                                        c.strides, c.dilates, c.pad_l, c.pad_r, attr);
    return InferPrims{pd, dnnl::convolution_forward(pd)};
  });
}

std::vector<paddle::Tensor> ConvInferFwd(const paddle::Tensor& x, const paddle::Tensor& w,
                                         const paddle::optional<paddle::Tensor>& bias,
                                         const paddle::optional<paddle::Tensor>& mean,
                                         const paddle::optional<paddle::Tensor>& variance,
                                         const paddle::optional<paddle::Tensor>& scale,
                                         const paddle::optional<paddle::Tensor>& shift,
                                         const paddle::optional<paddle::Tensor>& residual,
                                         const std::vector<int>& strides, const std::vector<int>& paddings,
                                         const std::vector<int>& dilations, int groups, float epsilon, bool relu,
                                         bool cl_in, bool cl_out, bool bf16, bool bf16_out) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "input");
    PD_CHECK(bf16 || !(is_bf16(x) || bf16_out), "pcnn conv_infer: bf16 maps need bf16 compute");
    check_cpu_f32(w, "weight");
    auto c = conv_geometry(nchw_of(x.shape(), cl_in), w.shape(), strides, paddings, dilations, groups);
    const bool norm = bool(mean);
    PD_CHECK(norm == bool(variance) && norm == bool(scale) && norm == bool(shift),
             "pcnn conv_infer: give all four batch-norm tensors or none");
    if (norm) {
      for (auto* t : {&*mean, &*variance, &*scale, &*shift}) {
        check_cpu_f32(*t, "batch-norm statistics and parameters");
        PD_CHECK(t->numel() == c.oc, "pcnn conv_infer: one batch-norm value per output channel");
      }
    }
    if (bias) {
      check_cpu_f32(*bias, "bias");
      PD_CHECK(bias->numel() == c.oc, "pcnn conv_infer: one bias per output channel");
    }
    const auto shape = out_shape_of(c, cl_out);
    if (residual) {
      check_cpu_f32(*residual, "residual");
      PD_CHECK(!bf16_out, "pcnn conv_infer: a residual add writes float32 maps");
      PD_CHECK(residual->shape() == shape, "pcnn conv_infer: the residual must have the output's shape and layout");
    }
    // Fold the norm into the weights and the bias.
    const int64_t per_out = w.numel() / c.oc;
    std::vector<float> folded_w, folded_b(c.oc, 0.f);
    const float* wd = w.data<float>();
    if (bias) std::copy(bias->data<float>(), bias->data<float>() + c.oc, folded_b.begin());
    if (norm) {  // w' = w * a[o], b' = b * a[o] + (shift - mean * a)[o]
      const auto f = norm_affine(*mean, *variance, *scale, *shift, epsilon);
      folded_w.resize(w.numel());
      for (int64_t o = 0; o < c.oc; ++o) {
        for (int64_t i = 0; i < per_out; ++i) folded_w[o * per_out + i] = wd[o * per_out + i] * f.a[o];
        folded_b[o] = folded_b[o] * f.a[o] + f.b[o];
      }
      wd = folded_w.data();
    }
    // A plain output's residual comes in through the sum post-op (oneDNN may write a blocked layout
    // there); a channels-last one is read in place by a binary post-op.
    const int res_kind = !residual ? kNone : cl_out ? kBinary : kSum;
    auto held = infer_prims(c, cl_in, cl_out, res_kind, relu, bf16, bf16_out);
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    auto out = empty_maps(shape, bf16_out);
    auto user_src = user_desc({c.n, c.ic, c.ih, c.iw}, cl_in, is_bf16(x));
    auto user_dst = user_desc({c.n, c.oc, c.oh, c.ow}, cl_out, bf16_out);
    auto src = as_input(s, user_src, x.data(), p.pd.src_desc());
    auto wei = as_input(s, memory::desc(weight_dims(c), dt::f32, weight_tag(c)), wd, p.pd.weights_desc());
    Output dst(user_dst, out.data(), p.pd.dst_desc());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, wei},
        {DNNL_ARG_BIAS, vector_memory(folded_b.data(), c.oc)},
        {DNNL_ARG_DST, dst.mem}};
    if (res_kind != kNone) {
      memory res(user_dst, cpu_engine(), const_cast<float*>(residual->data<float>()));
      if (res_kind == kSum) {  // the sum post-op adds what the destination already holds
        dnnl::reorder(res, dst.mem).execute(s, res, dst.mem);
      } else {
        args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = res;
      }
    }
    p.prim.execute(s, args);
    dst.finish(s);
    s.wait();
    return {out};
  });
}

std::vector<std::vector<int64_t>> ConvInferShape(
    const std::vector<int64_t>& x, const std::vector<int64_t>& w, const paddle::optional<std::vector<int64_t>>& bias,
    const paddle::optional<std::vector<int64_t>>& mean, const paddle::optional<std::vector<int64_t>>& variance,
    const paddle::optional<std::vector<int64_t>>& scale, const paddle::optional<std::vector<int64_t>>& shift,
    const paddle::optional<std::vector<int64_t>>& residual, const std::vector<int>& strides,
    const std::vector<int>& paddings, const std::vector<int>& dilations, int groups, float epsilon, bool relu,
    bool cl_in, bool cl_out, bool bf16, bool bf16_out) {
  return {out_shape_of(conv_geometry(nchw_of(x, cl_in), w, strides, paddings, dilations, groups), cl_out)};
}

std::vector<paddle::DataType> ConvInferDtype(const paddle::DataType& x, const paddle::DataType& w,
                                             const paddle::optional<paddle::DataType>& bias,
                                             const paddle::optional<paddle::DataType>& mean,
                                             const paddle::optional<paddle::DataType>& variance,
                                             const paddle::optional<paddle::DataType>& scale,
                                             const paddle::optional<paddle::DataType>& shift,
                                             const paddle::optional<paddle::DataType>& residual) {
  return {x};
}

PD_BUILD_OP(pcnn_conv_infer)
    .Inputs({"X", "W", paddle::Optional("Bias"), paddle::Optional("Mean"), paddle::Optional("Variance"),
             paddle::Optional("Scale"), paddle::Optional("Shift"), paddle::Optional("Residual")})
    .Outputs({"Out"})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "dilations: std::vector<int>", "groups: int",
            "epsilon: float", "relu: bool", "channels_last_in: bool", "channels_last_out: bool", "bf16: bool",
            "bf16_out: bool"})
    .SetKernelFn(PD_KERNEL(ConvInferFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ConvInferDtype));

// ---------------------------------------------------------------- pcnn_batch_norm_train

// Training batch norm (batch statistics) on NHWC maps, optionally with the ReLU that follows it
// (oneDNN's fuse_norm_relu: the backward pass reads a bit mask, not the output). Paddle's own kernel
// ran on one thread and got slower with two (128x16x28x28 forward and backward: 4.0 ms on one
// thread, 5.6 ms on two); oneDNN's NHWC batch norm is vectorised and threaded. The batch mean and
// (biased) variance are outputs: the layer folds them into its running statistics. The maps (and
// their gradients) may be bf16, so a bf16 ResNet block's maps stay bf16 from one convolution to the
// next; scale, shift and the statistics are float32 either way.
struct NormTrainPrims {
  dnnl::batch_normalization_forward::primitive_desc fwd;
  dnnl::batch_normalization_backward::primitive_desc bwd;
  dnnl::batch_normalization_forward fwd_prim;
  dnnl::batch_normalization_backward bwd_prim;
};

std::shared_ptr<NormTrainPrims> norm_train_prims(const std::vector<int64_t>& nhwc, float epsilon, bool relu,
                                                 bool bf16) {
  int32_t eps_bits;
  std::memcpy(&eps_bits, &epsilon, sizeof eps_bits);
  return cached<NormTrainPrims>(
      key_of({nhwc[0], nhwc[1], nhwc[2], nhwc[3], eps_bits, (int64_t)relu, (int64_t)bf16}), [&] {
        auto& eng = cpu_engine();
        memory::desc md({nhwc[0], nhwc[3], nhwc[1], nhwc[2]}, dt_of(bf16), tag::nhwc);
        auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
        if (relu) flags |= dnnl::normalization_flags::fuse_norm_relu;
        auto fwd = dnnl::batch_normalization_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, md,
                                                                     md, epsilon, flags);
        auto bwd = dnnl::batch_normalization_backward::primitive_desc(eng, dnnl::prop_kind::backward, md, md, md,
                                                                      epsilon, flags, fwd);
        return NormTrainPrims{fwd, bwd, dnnl::batch_normalization_forward(fwd),
                              dnnl::batch_normalization_backward(bwd)};
      });
}

std::vector<paddle::Tensor> NormTrainFwd(const paddle::Tensor& x, const paddle::Tensor& scale,
                                         const paddle::Tensor& shift, float epsilon, bool relu) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "input");
    check_cpu_f32(scale, "scale");
    check_cpu_f32(shift, "shift");
    PD_CHECK(x.shape().size() == 4, "pcnn batch_norm_train takes NHWC input");
    const int64_t c = x.shape()[3];
    PD_CHECK(scale.numel() == c && shift.numel() == c, "pcnn batch_norm_train: one scale and shift per channel");
    auto held = norm_train_prims(x.shape(), epsilon, relu, is_bf16(x));
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    auto y = empty_maps(x.shape(), is_bf16(x));
    auto mean = empty_like_shape({c});
    auto variance = empty_like_shape({c});
    auto ws_md = p.fwd.workspace_desc();
    auto ws = paddle::empty({std::max<int64_t>(1, (int64_t)ws_md.get_size())}, paddle::DataType::UINT8,
                            paddle::CPUPlace());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(p.fwd.src_desc(), cpu_engine(), const_cast<void*>(x.data()))},
        {DNNL_ARG_DST, memory(p.fwd.dst_desc(), cpu_engine(), y.data())},
        {DNNL_ARG_SCALE, per_channel(scale)},
        {DNNL_ARG_SHIFT, per_channel(shift)},
        {DNNL_ARG_MEAN, per_channel(mean)},
        {DNNL_ARG_VARIANCE, per_channel(variance)}};
    if (ws_md.get_size() > 0) args[DNNL_ARG_WORKSPACE] = memory(ws_md, cpu_engine(), ws.data<uint8_t>());
    p.fwd_prim.execute(s, args);
    s.wait();
    return {y, mean, variance, ws};
  });
}

std::vector<paddle::Tensor> NormTrainBwd(const paddle::Tensor& x, const paddle::Tensor& scale,
                                         const paddle::Tensor& mean, const paddle::Tensor& variance,
                                         const paddle::Tensor& ws, const paddle::Tensor& dy, float epsilon, bool relu) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    PD_CHECK(dy.shape() == x.shape() && is_bf16(dy) == is_bf16(x),
             "pcnn batch_norm_train: the output gradient's shape or dtype differs from the input's");
    auto held = norm_train_prims(x.shape(), epsilon, relu, is_bf16(x));
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    const int64_t c = x.shape()[3];
    auto dx = empty_maps(x.shape(), is_bf16(x));
    auto dscale = empty_like_shape({c});
    auto dshift = empty_like_shape({c});
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(p.bwd.src_desc(), cpu_engine(), const_cast<void*>(x.data()))},
        {DNNL_ARG_DIFF_DST, memory(p.bwd.diff_dst_desc(), cpu_engine(), const_cast<void*>(dy.data()))},
        {DNNL_ARG_DIFF_SRC, memory(p.bwd.diff_src_desc(), cpu_engine(), dx.data())},
        {DNNL_ARG_SCALE, per_channel(scale)},
        {DNNL_ARG_MEAN, per_channel(mean)},
        {DNNL_ARG_VARIANCE, per_channel(variance)},
        {DNNL_ARG_DIFF_SCALE, per_channel(dscale)},
        {DNNL_ARG_DIFF_SHIFT, per_channel(dshift)}};
    auto ws_md = p.fwd.workspace_desc();
    if (ws_md.get_size() > 0)
      args[DNNL_ARG_WORKSPACE] = memory(ws_md, cpu_engine(), const_cast<uint8_t*>(ws.data<uint8_t>()));
    p.bwd_prim.execute(s, args);
    s.wait();
    return {dx, dscale, dshift};
  });
}

std::vector<std::vector<int64_t>> NormTrainShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                                 const std::vector<int64_t>& shift, float epsilon, bool relu) {
  return guarded([&]() -> std::vector<std::vector<int64_t>> {
    PD_CHECK(x.size() == 4, "pcnn batch_norm_train takes NHWC input");
    // The workspace (fuse_norm_relu's bit mask) has the same size for float32 and bf16 maps.
    auto held = norm_train_prims(x, epsilon, relu, false);
    auto& p = *held;
    return {x, {x[3]}, {x[3]}, {std::max<int64_t>(1, (int64_t)p.fwd.workspace_desc().get_size())}};
  });
}
std::vector<paddle::DataType> NormTrainDtype(const paddle::DataType& x, const paddle::DataType& scale,
                                             const paddle::DataType& shift) {
  return {x, scale, scale, paddle::DataType::UINT8};  // the statistics are float32, like scale
}

PD_BUILD_OP(pcnn_batch_norm_train)
    .Inputs({"X", "Scale", "Shift"})
    .Outputs({"Out", "Mean", "Variance", "Workspace"})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(NormTrainFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(NormTrainShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NormTrainDtype));

PD_BUILD_GRAD_OP(pcnn_batch_norm_train)
    .Inputs({"X", "Scale", "Mean", "Variance", "Workspace", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Shift")})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(NormTrainBwd));

// ---------------------------------------------------------------- pcnn_add: a ResNet block's end

// x + y, then a ReLU if asked: the residual add and ReLU that end a ResNet block, in one pass and
// threaded. Paddle 3.3 has no CPU bf16 add kernel, so without this a bf16 block's maps turned
// float32 at every add (and Paddle's float32 add and ReLU are two more passes over the maps).
// Elementwise: any shape and layout, both inputs the same shape and dtype (float32 or bf16).
struct AddPrims {
  dnnl::binary::primitive_desc pd;
  dnnl::binary prim;
};

std::shared_ptr<AddPrims> add_prims(int64_t numel, bool relu, bool bf16) {
  return cached<AddPrims>(key_of({numel, (int64_t)relu, (int64_t)bf16, 7}), [&] {
    memory::desc md({numel}, dt_of(bf16), tag::a);
    auto pd = dnnl::binary::primitive_desc(cpu_engine(), dnnl::algorithm::binary_add, md, md, md,
                                           act_post_op(relu ? "relu" : "none"));
    return AddPrims{pd, dnnl::binary(pd)};
  });
}

// A copy of ``t`` (oneDNN's reorder: threaded, unlike a memcpy).
paddle::Tensor copy_maps(dnnl::stream& s, const paddle::Tensor& t) {
  auto out = empty_maps(t.shape(), is_bf16(t));
  if (t.numel() == 0) return out;
  memory::desc md({t.numel()}, dt_of(is_bf16(t)), tag::a);
  memory src(md, cpu_engine(), const_cast<void*>(t.data())), dst(md, cpu_engine(), out.data());
  dnnl::reorder(src, dst).execute(s, src, dst);
  return out;
}

std::vector<paddle::Tensor> AddFwd(const paddle::Tensor& x, const paddle::Tensor& y, bool relu) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    check_cpu_maps(x, "x");
    check_cpu_maps(y, "y");
    PD_CHECK(x.shape() == y.shape(), "pcnn add: both inputs must have the same shape");
    PD_CHECK(is_bf16(x) == is_bf16(y), "pcnn add: both inputs must have the same dtype");
    auto out = empty_maps(x.shape(), is_bf16(x));
    if (x.numel() == 0) return {out};
    auto held = add_prims(x.numel(), relu, is_bf16(x));
    auto& p = *held;
    dnnl::stream s(cpu_engine());
    p.prim.execute(s, {{DNNL_ARG_SRC_0, memory(p.pd.src0_desc(), cpu_engine(), const_cast<void*>(x.data()))},
                       {DNNL_ARG_SRC_1, memory(p.pd.src1_desc(), cpu_engine(), const_cast<void*>(y.data()))},
                       {DNNL_ARG_DST, memory(p.pd.dst_desc(), cpu_engine(), out.data())}});
    s.wait();
    return {out};
  });
}

// Both inputs get the same gradient: the output's, through the ReLU if there is one. The second is
// a copy, so Paddle may accumulate into either without touching the other.
std::vector<paddle::Tensor> AddBwd(const paddle::Tensor& out, const paddle::Tensor& dout, bool relu) {
  return guarded([&]() -> std::vector<paddle::Tensor> {
    apply_threads();
    PD_CHECK(dout.shape() == out.shape() && is_bf16(dout) == is_bf16(out),
             "pcnn add: the output gradient's shape or dtype differs from the output's");
    dnnl::stream s(cpu_engine());
    auto dx = relu ? act_backward(s, "relu", out, dout) : copy_maps(s, dout);
    auto dy = copy_maps(s, dx);
    s.wait();
    return {dx, dy};
  });
}

std::vector<std::vector<int64_t>> AddShape(const std::vector<int64_t>& x, const std::vector<int64_t>& y, bool relu) {
  return {x};
}
std::vector<paddle::DataType> AddDtype(const paddle::DataType& x, const paddle::DataType& y) { return {x}; }

PD_BUILD_OP(pcnn_add)
    .Inputs({"X", "Y"})
    .Outputs({"Out"})
    .Attrs({"relu: bool"})
    .SetKernelFn(PD_KERNEL(AddFwd))
    .SetInferShapeFn(PD_INFER_SHAPE(AddShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AddDtype));

PD_BUILD_GRAD_OP(pcnn_add)
    .Inputs({"Out", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Y")})
    .Attrs({"relu: bool"})
    .SetKernelFn(PD_KERNEL(AddBwd));
