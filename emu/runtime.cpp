// The emulator's launcher and block scheduler (see cuda_emu.h for the model).
//
// emu_launch() checks a launch the way the driver would (kernel exists, argument types match,
// block and grid sizes in range), then runs the grid: blocks are taken from a shared counter by
// up to `threads` OS threads; each block's CUDA threads are fibers scheduled cooperatively.
// A fiber gives up the CPU only at __syncthreads (released once every live thread of the block
// is there) and at warp collectives (released once every live lane of its warp is there). If no
// fiber can move, the kernel has deadlocked (a barrier in divergent code): that is an error.
// Odd-numbered blocks run their threads in reverse order (see run_block), and build.rs compiles
// with -fsanitize=alignment,bounds so a misaligned vector access (a fault on the GPU, silent on
// x86) or an out-of-range static array index (shared memory overrun) aborts the test.
//
// Switching fibers: on x86-64 a few instructions of our own (emu_switch below) save and restore
// the callee-saved registers and the stack pointer. glibc's swapcontext also saves and restores
// the signal mask, a system call per switch: with it, 80% of an emulator-heavy test's time went
// to switching (perf, tests/activation_storage.rs). Elsewhere ucontext does the job (and on
// x86-64 too when built with -DSKINENGINE_EMU_UCONTEXT, to test that path).
#include <sys/mman.h>
#if defined(__x86_64__) && !defined(SKINENGINE_EMU_UCONTEXT)
#define EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emu.h"

thread_local dim3 emu_threadIdx;
thread_local dim3 emu_blockIdx;
thread_local dim3 emu_blockDim;
thread_local dim3 emu_gridDim;

extern "C" const emu::Kernel* emu_find_kernel(const char* name);

namespace {

constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxDynamicShared = 48 * 1024;

enum State : unsigned char { RUNNABLE, AT_BARRIER, AT_WARP, DONE };

// One cp.async in flight: `bytes` to dst, the first `src_bytes` from src, the rest zeros.
struct Copy {
    void* dst;
    const void* src;
    unsigned bytes, src_bytes;
    void run() const {
        std::memcpy(dst, src, src_bytes);
        std::memset(static_cast<char*>(dst) + src_bytes, 0, bytes - src_bytes);
    }
};

// A fiber's saved execution state.
#ifdef EMU_ASM_SWITCH
// The stack pointer of a suspended fiber (or scheduler): its stack holds, from there up, the
// MXCSR and x87 control word (8 bytes), r15, r14, r13, r12, rbx, rbp and the address to resume at.
struct Context {
    void* sp = nullptr;
};
extern "C" void emu_switch(void** save_sp, void* to_sp);
// Saves this context's state on its stack and its stack pointer to *save_sp, then resumes the
// one saved at to_sp (System V: the registers not saved here are caller-saved, so the C++ caller
// of emu_switch already keeps what it needs of them).
asm(R"(
    .text
    .p2align 4
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
#else
struct Context {
    ucontext_t uc;
};
#endif

struct Fiber {
    Context ctx;
    char* stack = nullptr;  // mmap-ed region: guard page, then the stack
    dim3 tid;
    State state = DONE;
    // cp.async state of this CUDA thread: copies not yet committed, then committed groups
    // (oldest first). A copy lands only when a wait_group covers its group, the latest moment
    // the PTX ISA allows, so a kernel that reads before waiting reads stale data in tests.
    std::vector<Copy> open_copies;
    std::deque<std::vector<Copy>> copy_groups;
    void finish_copies() {
        // A thread that exits with copies in flight: they still land (nothing cancels them).
        for (auto& g : copy_groups)
            for (auto& c : g) c.run();
        for (auto& c : open_copies) c.run();
        copy_groups.clear();
        open_copies.clear();
    }
};

// One per OS thread that runs blocks; kept in a pool so fiber stacks are mapped once.
struct Worker {
    std::vector<Fiber> fibers;
    Context sched;
    unsigned current = 0;
    std::vector<uint64_t> warp_slots;
    std::vector<unsigned char> dyn_shared;
    const emu::Kernel* kernel = nullptr;
    void** args = nullptr;

    ~Worker() {
        for (auto& f : fibers)
            if (f.stack) munmap(f.stack, kStackBytes + kGuardBytes);
    }
};

thread_local Worker* tw = nullptr;

std::mutex pool_mu;
std::vector<Worker*> pool;

Worker* take_worker() {
    std::lock_guard<std::mutex> g(pool_mu);
    if (pool.empty()) return new Worker();
    Worker* w = pool.back();
    pool.pop_back();
    return w;
}
void give_worker(Worker* w) {
    std::lock_guard<std::mutex> g(pool_mu);
    pool.push_back(w);
}

// Suspends `from` and resumes `to`.
void switch_to(Context& from, Context& to) {
#ifdef EMU_ASM_SWITCH
    emu_switch(&from.sp, to.sp);
#else
    swapcontext(&from.uc, &to.uc);
#endif
}

// A fiber's whole life: its CUDA thread, then back to the scheduler for good.
void fiber_entry() {
    Worker* w = tw;
    w->kernel->run(w->args);
    Fiber& f = w->fibers[w->current];
    f.finish_copies();
    f.state = DONE;
#ifdef EMU_ASM_SWITCH
    // The scheduler never resumes a finished fiber, so this switch does not return.
    switch_to(f.ctx, w->sched);
    __builtin_trap();
#endif
    // (ucontext: returning resumes uc_link, the scheduler.)
}

// Prepares fiber `f` to start at fiber_entry on its own stack when first switched to.
void start_context(Fiber& f, Worker* w) {
    char* base = f.stack + kGuardBytes;
#ifdef EMU_ASM_SWITCH
    // The stack's top, 16-byte aligned, then the frame emu_switch pops: control words, six
    // registers (zero), and fiber_entry as the return address. After that `ret` the stack
    // pointer is 8 mod 16, as at the entry of any called function; above it, a zero return
    // address ends backtraces.
    auto* top = reinterpret_cast<uint64_t*>(
        reinterpret_cast<uintptr_t>(base + kStackBytes) & ~uintptr_t(15));
    uint64_t* sp = top - 9;
    uint32_t mxcsr;
    uint16_t fcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fcw));
    sp[0] = uint64_t(mxcsr) | (uint64_t(fcw) << 32);
    for (int i = 1; i <= 6; ++i) sp[i] = 0;  // r15, r14, r13, r12, rbx, rbp
    sp[7] = reinterpret_cast<uint64_t>(&fiber_entry);
    sp[8] = 0;
    f.ctx.sp = sp;
    (void)w;
#else
    getcontext(&f.ctx.uc);
    f.ctx.uc.uc_stack.ss_sp = base;
    f.ctx.uc.uc_stack.ss_size = kStackBytes;
    f.ctx.uc.uc_link = &w->sched.uc;
    makecontext(&f.ctx.uc, fiber_entry, 0);
#endif
}

void yield(State s) {
    Worker* w = tw;
    Fiber& f = w->fibers[w->current];
    f.state = s;
    switch_to(f.ctx, w->sched);
}

// Runs one block to completion; returns an error message, empty on success. `reverse` runs the
// fibers from the last thread to the first: blocks alternate orders, so a kernel that reads
// shared memory another thread writes without a barrier between them gets stale data in one
// order or the other, and fails its tests instead of passing by luck of the schedule.
std::string run_block(Worker* w, unsigned nthreads, dim3 block, bool reverse) {
    if (w->fibers.size() < nthreads) w->fibers.resize(nthreads);
    for (unsigned i = 0; i < nthreads; ++i) {
        Fiber& f = w->fibers[i];
        if (!f.stack) {
            void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) return "emulator: cannot map a fiber stack";
            mprotect(p, kGuardBytes, PROT_NONE);  // overflow faults instead of corrupting
            f.stack = static_cast<char*>(p);
        }
        start_context(f, w);
        f.tid.x = i % block.x;
        f.tid.y = (i / block.x) % block.y;
        f.tid.z = i / (block.x * block.y);
        f.state = RUNNABLE;
        f.open_copies.clear();
        f.copy_groups.clear();
    }
    const unsigned nwarps = (nthreads + 31) / 32;
    for (;;) {
        for (unsigned k = 0; k < nthreads; ++k) {
            const unsigned i = reverse ? nthreads - 1 - k : k;
            Fiber& f = w->fibers[i];
            if (f.state != RUNNABLE) continue;
            w->current = i;
            emu_threadIdx = f.tid;
            switch_to(w->sched, f.ctx);
        }
        // Nobody is runnable: release whole warps waiting at a collective first ...
        bool released = false;
        for (unsigned wp = 0; wp < nwarps; ++wp) {
            unsigned lo = wp * 32, hi = std::min(lo + 32, nthreads);
            bool any = false, all = true;
            for (unsigned i = lo; i < hi; ++i) {
                State s = w->fibers[i].state;
                any |= s == AT_WARP;
                all &= s == AT_WARP || s == DONE;
            }
            if (any && all) {
                for (unsigned i = lo; i < hi; ++i)
                    if (w->fibers[i].state == AT_WARP) w->fibers[i].state = RUNNABLE;
                released = true;
            }
        }
        if (released) continue;
        // ... then the block barrier, once every live thread has reached it.
        unsigned done = 0, barrier = 0;
        for (unsigned i = 0; i < nthreads; ++i) {
            done += w->fibers[i].state == DONE;
            barrier += w->fibers[i].state == AT_BARRIER;
        }
        if (done == nthreads) return {};
        if (barrier + done == nthreads) {
            for (unsigned i = 0; i < nthreads; ++i)
                if (w->fibers[i].state == AT_BARRIER) w->fibers[i].state = RUNNABLE;
            continue;
        }
        char msg[200];
        snprintf(msg, sizeof msg,
                 "kernel %s deadlocked in block (%u,%u,%u): %u threads at __syncthreads, %u "
                 "finished, the rest at a warp collective their warp never completes",
                 w->kernel->name, emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, barrier, done);
        return msg;
    }
}

}  // namespace

extern "C" void emu_syncthreads() { yield(AT_BARRIER); }
extern "C" void emu_warp_sync() { yield(AT_WARP); }
extern "C" void* emu_dynamic_shared() { return tw->dyn_shared.data(); }
extern "C" void emu_cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes) {
    tw->fibers[tw->current].open_copies.push_back({dst, src, bytes, std::min(src_bytes, bytes)});
}
// cp.async.commit_group: the copies issued since the last commit form one group (possibly empty).
extern "C" void emu_cp_async_commit() {
    Fiber& f = tw->fibers[tw->current];
    f.copy_groups.push_back(std::move(f.open_copies));
    f.open_copies.clear();
}
// cp.async.wait_group N: every committed group but the newest N has landed.
extern "C" void emu_cp_async_wait(unsigned pending) {
    Fiber& f = tw->fibers[tw->current];
    while (f.copy_groups.size() > pending) {
        for (auto& c : f.copy_groups.front()) c.run();
        f.copy_groups.pop_front();
    }
}
extern "C" uint64_t* emu_warp_slots() {
    Worker* w = tw;
    return w->warp_slots.data() + (w->current / 32) * 32;
}

// Launches `name` over grid x block; `args[i]` points at the i-th argument's value, as for
// cuLaunchKernel. Returns 0, or 1 with a message in `err`.
extern "C" int emu_launch(const char* name, const char* sig, const unsigned* grid,
                          const unsigned* block, unsigned dyn_shared, void** args, unsigned threads,
                          char* err, size_t err_len) {
    auto fail = [&](const std::string& m) {
        snprintf(err, err_len, "%s", m.c_str());
        return 1;
    };
    const emu::Kernel* k = emu_find_kernel(name);
    if (!k) return fail(std::string("no kernel named ") + name + " in the emulator build");
    if (std::string(k->sig) != sig)
        return fail(std::string("kernel ") + name + " takes arguments '" + k->sig +
                    "' but the launch passes '" + sig + "'");
    dim3 g{grid[0], grid[1], grid[2]}, b{block[0], block[1], block[2]};
    unsigned long long nthreads = 1ull * b.x * b.y * b.z;
    if (nthreads == 0 || nthreads > kMaxThreads || b.z > 64)
        return fail(std::string("kernel ") + name + ": invalid block size " +
                    std::to_string(b.x) + "x" + std::to_string(b.y) + "x" + std::to_string(b.z));
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535)
        return fail(std::string("kernel ") + name + ": invalid grid size " + std::to_string(g.x) +
                    "x" + std::to_string(g.y) + "x" + std::to_string(g.z));
    if (dyn_shared > kMaxDynamicShared)
        return fail(std::string("kernel ") + name + ": " + std::to_string(dyn_shared) +
                    " bytes of dynamic shared memory, more than the 48 KiB default limit");

    const unsigned long long nblocks = 1ull * g.x * g.y * g.z;
    // Alternates which blocks run in reverse from one launch to the next, so single-block
    // kernels get both orders too.
    static std::atomic<unsigned> launches{0};
    const unsigned parity = launches.fetch_add(1);
    unsigned nworkers = std::max(1u, std::min<unsigned>(threads, unsigned(std::min(nblocks, 1024ull))));
    std::atomic<unsigned long long> next{0};
    std::mutex err_mu;
    std::string first_err;

    auto work = [&]() {
        Worker* w = take_worker();
        Worker* saved = tw;
        tw = w;
        w->kernel = k;
        w->args = args;
        w->warp_slots.assign(((nthreads + 31) / 32) * 32, 0);
        // Shared memory starts as garbage on the GPU; poison it (NaN bytes) so a kernel that
        // reads before writing shows up in tests instead of reading zeros.
        w->dyn_shared.assign(std::max(1u, dyn_shared), 0xff);
        emu_blockDim = b;
        emu_gridDim = g;
        for (;;) {
            unsigned long long i = next.fetch_add(1);
            if (i >= nblocks) break;
            emu_blockIdx.x = unsigned(i % g.x);
            emu_blockIdx.y = unsigned((i / g.x) % g.y);
            emu_blockIdx.z = unsigned(i / (1ull * g.x * g.y));
            std::string e = run_block(w, unsigned(nthreads), b, ((i + parity) & 1) != 0);
            if (!e.empty()) {
                std::lock_guard<std::mutex> lk(err_mu);
                if (first_err.empty()) first_err = e;
                next.store(nblocks);
                break;
            }
        }
        tw = saved;
        give_worker(w);
    };
    std::vector<std::thread> extra;
    for (unsigned t = 1; t < nworkers; ++t) extra.emplace_back(work);
    work();
    for (auto& t : extra) t.join();
    if (!first_err.empty()) return fail(first_err);
    return 0;
}
