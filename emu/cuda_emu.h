// CUDA built-ins for running kernels/*.cu on the CPU, unchanged.
//
// build.rs compiles every kernel file as C++20 with this header force-included
// (`-include cuda_emu.h`), so the emulator executes the very source NVRTC compiles for the GPU.
// The model: a launch runs its blocks on a few OS threads (one block at a time per thread);
// inside a block every CUDA thread is a fiber (ucontext) with its own stack. A fiber runs until it
// reaches a synchronisation point (__syncthreads or a warp collective), then the scheduler in
// runtime.cpp moves on, so barriers and shuffles mean what they mean on the GPU. Shared memory is
// `thread_local` storage: all fibers of a block live on one OS thread and see the same array.
#pragma once

// Device headers that need an emulator-only definition (tensor_core.cuh: mma, ldmatrix, cp.async)
// test this; NVRTC never sees it.
#define SKINENGINE_CUDA_EMU 1

#include <atomic>
#include <cmath>
#include <math.h>
#include <utility>
#include <cstdint>
#include <cstring>
#include <type_traits>

// ---- qualifiers ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared memory: one copy per OS thread = per block in flight. build.rs rewrites
// `extern __shared__ T name[];` (dynamic shared memory) into a pointer from emu_dynamic_shared().
#define __shared__ static thread_local
#define __constant__ static const

// ---- vector types ---------------------------------------------------------------------------
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
using uint3 = dim3;
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// ---- thread and block indices (set by the scheduler before each fiber resumes) -------------
extern thread_local dim3 emu_threadIdx;
extern thread_local dim3 emu_blockIdx;
extern thread_local dim3 emu_blockDim;
extern thread_local dim3 emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim
static constexpr int warpSize = 32;

// ---- synchronisation (runtime.cpp) ----------------------------------------------------------
extern "C" void emu_syncthreads();
extern "C" void emu_warp_sync();
extern "C" void* emu_dynamic_shared();
// The calling fiber's slot in its warp's exchange buffer, and lane `l`'s.
extern "C" uint64_t* emu_warp_slots();
// cp.async (runtime.cpp): copies wait in the calling thread's queue until a wait_group that
// covers their group (or the thread's end), so reading the destination early sees the old bytes.
extern "C" void emu_cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes);
extern "C" void emu_cp_async_commit();
extern "C" void emu_cp_async_wait(unsigned pending);
inline void __syncthreads() { emu_syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu_warp_sync(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() {}

inline unsigned emu_lane() {
    unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    return linear % 32u;
}

// Every lane publishes a value, waits for the whole warp, reads, then waits again so a following
// collective cannot overwrite a slot another lane has not read yet.
template <typename T>
inline uint64_t emu_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T>
inline T emu_from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
template <typename T>
inline T emu_exchange(T v, unsigned src_lane) {
    uint64_t* slots = emu_warp_slots();
    slots[emu_lane()] = emu_bits(v);
    emu_warp_sync();
    T r = emu_from_bits<T>(slots[src_lane % 32u]);
    emu_warp_sync();
    return r;
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    unsigned lane = emu_lane();
    unsigned base = lane & ~unsigned(width - 1);
    return emu_exchange(v, base + (unsigned(src) & unsigned(width - 1)));
}
template <typename T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    unsigned lane = emu_lane();
    unsigned in_seg = lane & unsigned(width - 1);
    unsigned src = in_seg + delta < unsigned(width) ? lane + delta : lane;
    return emu_exchange(v, src);
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    unsigned lane = emu_lane();
    unsigned in_seg = lane & unsigned(width - 1);
    unsigned src = in_seg >= delta ? lane - delta : lane;
    return emu_exchange(v, src);
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    unsigned lane = emu_lane();
    unsigned src = lane ^ unsigned(mask);
    if ((src & ~unsigned(width - 1)) != (lane & ~unsigned(width - 1))) src = lane;
    return emu_exchange(v, src);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    uint64_t* slots = emu_warp_slots();
    slots[emu_lane()] = pred ? 1 : 0;
    emu_warp_sync();
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (((mask >> l) & 1u) && slots[l]) r |= 1u << l;
    emu_warp_sync();
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == __ballot_sync(mask, 1); }

// ---- atomics: blocks run on several OS threads, so these are real atomics -------------------
template <typename T>
inline T atomicAdd(T* p, T v) {
    return std::atomic_ref<T>(*p).fetch_add(v);
}
inline float atomicMax(float* p, float v) {
    std::atomic_ref<float> a(*p);
    float old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}
inline int atomicMax(int* p, int v) {
    std::atomic_ref<int> a(*p);
    int old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}
inline int atomicCAS(int* p, int expected, int desired) {
    std::atomic_ref<int>(*p).compare_exchange_strong(expected, desired);
    return expected;
}
inline unsigned atomicCAS(unsigned* p, unsigned expected, unsigned desired) {
    std::atomic_ref<unsigned>(*p).compare_exchange_strong(expected, desired);
    return expected;
}
template <typename T>
inline T atomicExch(T* p, T v) {
    return std::atomic_ref<T>(*p).exchange(v);
}

// ---- loads and math intrinsics --------------------------------------------------------------
template <typename T>
inline T __ldg(const T* p) {
    return *p;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline int __float_as_int(float x) { return emu_from_bits<int>(emu_bits(x)); }
inline float __int_as_float(int x) { return emu_from_bits<float>(emu_bits(x)); }
inline unsigned __float_as_uint(float x) { return emu_from_bits<unsigned>(emu_bits(x)); }
inline float __uint_as_float(unsigned x) { return emu_from_bits<float>(emu_bits(x)); }
inline long long __double_as_longlong(double x) { return emu_from_bits<long long>(emu_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
#define CUDART_INF_F __builtin_inff()

// ---- what the generated registry needs ------------------------------------------------------
namespace emu {
// Argument type codes, matched against the signature build.rs parsed from the source:
// 'F' float*, 'I' int*, 'H' unsigned short* (bf16 / f16 storage), 'V' void* (an activation in
// any float format, src/cuda/act.cuh), 'f' float, 'i' int, 'u' unsigned, 'l' long long / int64, 'd' double,
// 'S' a struct by value (the Rust side checks the struct's name; build.rs its fields).
template <typename T>
constexpr char code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) {
        using P = std::remove_cv_t<std::remove_pointer_t<U>>;
        if constexpr (std::is_same_v<P, float>) return 'F';
        else if constexpr (std::is_same_v<P, int>) return 'I';
        else if constexpr (std::is_same_v<P, unsigned short>) return 'H';
        else if constexpr (std::is_same_v<P, void>) return 'V';
        else return '?';
    } else if constexpr (std::is_same_v<U, float>) return 'f';
    else if constexpr (std::is_same_v<U, int>) return 'i';
    else if constexpr (std::is_same_v<U, unsigned>) return 'u';
    else if constexpr (std::is_same_v<U, long long> || std::is_same_v<U, int64_t>) return 'l';
    else if constexpr (std::is_same_v<U, double>) return 'd';
    else if constexpr (std::is_class_v<U>) return 'S';
    else return '?';
}
template <typename... A>
struct Sig {
    static constexpr char value[sizeof...(A) + 1] = {code<A>()..., '\0'};
};
template <typename... A, size_t... I>
inline void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}
template <auto F>
struct Thunk;
template <typename... A, void (*F)(A...)>
struct Thunk<F> {
    static void run(void** args) { call(F, args, std::index_sequence_for<A...>{}); }
    static constexpr const char* sig = Sig<A...>::value;
};
struct Kernel {
    const char* name;
    const char* sig;
    void (*run)(void**);
};
}  // namespace emu
#define EMU_KERNEL(f) emu::Kernel{#f, emu::Thunk<&f>::sig, &emu::Thunk<&f>::run}
