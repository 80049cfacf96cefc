// mpsim's fast RTL executor: a Verilator model of an emitted MAC array behind a plain C ABI (sim/rtl_exec.py).
//
// Built by sim.rtl_build with the model verilated as `--prefix Vtop`; the stream port names come in as macros
// from the manifest. One call streams a whole job list through the array's valid/ready handshake, so Python
// pays per run, not per clock edge. The array's input ready and output valid/payload depend on registers only
// (the manifest's protocol), so the values after one cycle's eval are the ones the next rising edge acts on:
// sample them, drive the inputs, then the rising edge; the cocotb bench does the same on each falling edge.

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"

// The ports' C++ names (Verilator's spelling of the manifest's names) come from the build: -DMPSIM_CLK=clk ...
#if !defined(MPSIM_CLK) || !defined(MPSIM_RST) || !defined(MPSIM_IN_VALID) || !defined(MPSIM_IN_READY) || \
    !defined(MPSIM_IN_PAYLOAD) || !defined(MPSIM_OUT_VALID) || !defined(MPSIM_OUT_READY) || !defined(MPSIM_OUT_PAYLOAD)
#error "build rtl_exec.cpp through sim.rtl_build, which defines the port names"
#endif

#ifndef MPSIM_THREADS
#define MPSIM_THREADS 1
#endif
#ifndef MPSIM_BOTH_EDGES
#define MPSIM_BOTH_EDGES 0
#endif

// Bumped whenever a signature or the stats layout below changes; Python refuses a library of another version.
#define MPSIM_EXEC_ABI 1

namespace {

// Ports up to 64 bits are plain integers in Verilator, wider ones VlWide<N> (N 32-bit words, LSB first).
template <typename T>
struct Words {
    static constexpr int value = sizeof(T) > 4 ? 2 : 1;
};
template <std::size_t N>
struct Words<VlWide<N>> {
    static constexpr int value = static_cast<int>(N);
};
// Verilator 5 declares a top's ports as references into its root module.
#define MPSIM_WORDS(port) (Words<std::remove_cv_t<std::remove_reference_t<decltype(Vtop::port)>>>::value)
constexpr int IN_WORDS = MPSIM_WORDS(MPSIM_IN_PAYLOAD);
constexpr int OUT_WORDS = MPSIM_WORDS(MPSIM_OUT_PAYLOAD);

template <typename T>
inline void put(T& port, const uint32_t* w) {
    uint64_t v = w[0];
    if (sizeof(T) > 4) v |= static_cast<uint64_t>(w[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N>
inline void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}

template <typename T>
inline void get(const T& port, uint32_t* w) {
    const uint64_t v = port;
    w[0] = static_cast<uint32_t>(v);
    if (sizeof(T) > 4) w[1] = static_cast<uint32_t>(v >> 32);
}
template <std::size_t N>
inline void get(const VlWide<N>& port, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
}

// Verilator remembers the clock's value at the last eval in this root member and calls a rising edge a 1 seen
// after a 0 there. Where the member exists (Verilator 5), a cycle is one eval: drive the inputs, set that memory
// to 0 and eval with clk high; the falling edge's eval (no logic here runs on it) is skipped, and with it a second
// pass of the input-decoding logic Verilator runs on every eval. Elsewhere, the plain two-edge cycle.
#define MPSIM_PASTE(a, b, c) a##b##c
#define MPSIM_PREV(clk) MPSIM_PASTE(__Vtrigprevexpr___TOP__, clk, __0)
// sim.rtl_build defines MPSIM_BOTH_EDGES for a design with logic on a falling edge.
template <typename Root, typename = void>
struct SeesEdges : std::false_type {};
template <typename Root>
struct SeesEdges<Root, std::void_t<decltype(std::declval<Root&>().MPSIM_PREV(MPSIM_CLK))>> : std::true_type {};

// splitmix64: the back-pressure pattern, seeded per run and independent of the data.
inline uint32_t draw(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

struct Model {
    VerilatedContext context;
    Vtop* top;
    // Verilator's context starts a thread pool as wide as the machine unless told the model's own thread count
    // (MPSIM_THREADS: sim.rtl_build's `threads`, Verilator's --threads); and setting it would pin the pool's
    // threads to cores, the same cores for every model that runs beside this one (sim.rtl_exec.run_parallel).
    Model() : top((context.threads(MPSIM_THREADS), context.useNumaAssign(false), new Vtop{&context, "top"})) {}
    ~Model() {
        top->final();
        delete top;
    }
    // One clock cycle: a rising edge acting on the inputs as driven, then the clock low again (or, see SeesEdges,
    // marked low without an eval: the ports read the same either way, as nothing runs on the falling edge).
    void edge() {
        if constexpr (SeesEdges<Vtop___024root>::value && !MPSIM_BOTH_EDGES) {
            top->rootp->MPSIM_PREV(MPSIM_CLK) = 0;
            top->MPSIM_CLK = 1;
            top->eval();
        } else {
            top->MPSIM_CLK = 1;
            top->eval();
            top->MPSIM_CLK = 0;
            top->eval();
        }
    }
};

}  // namespace

extern "C" {

// Stats written by mpsim_run, in this order.
enum {
    STAT_CYCLES,       // clock cycles from the first sampled cycle through the one that took the last output beat
    STAT_IN_TAKEN,     // cycles in which an input beat moved
    STAT_IN_STALLS,    // cycles in which a beat was offered and the array was not ready
    STAT_OUT_TAKEN,    // cycles in which an output beat moved
    STAT_OUT_STALLS,   // cycles in which the array offered an output beat that was not taken
    STAT_MARK_CYCLE,   // cycle at which input beat `mark` moved (-1: never)
    STAT_FIRST_VALID,  // first cycle with the output valid (-1: never)
    STAT_COUNT
};

int mpsim_exec_abi(void) { return MPSIM_EXEC_ABI; }

void mpsim_exec_words(int* in_words, int* out_words) {
    *in_words = IN_WORDS;
    *out_words = OUT_WORDS;
}

void* mpsim_exec_create(void) { return new Model(); }

void mpsim_exec_destroy(void* handle) { delete static_cast<Model*>(handle); }

// Synchronous reset: `cycles` rising edges with rst high and both streams idle, then rst low.
void mpsim_exec_reset(void* handle, int cycles) {
    Model& m = *static_cast<Model*>(handle);
    Vtop& top = *m.top;
    top.MPSIM_CLK = 0;
    top.MPSIM_RST = 1;
    top.MPSIM_IN_VALID = 0;
    top.MPSIM_OUT_READY = 0;
    const uint32_t zero[IN_WORDS] = {};
    put(top.MPSIM_IN_PAYLOAD, zero);
    top.eval();
    for (int i = 0; i < cycles; ++i) m.edge();
    top.MPSIM_RST = 0;
    top.eval();
}

// Stream `n_beats` input beats (`in_words` words each) and collect `n_out` output beats into `out`.
// `in_hold`/`out_hold`: chance per cycle, out of 2**32, that the input's valid / the output's ready is held low.
// Returns 0 when every output beat arrived, 1 when nothing moved for `stall_limit` cycles (stats say where).
int mpsim_exec_run(void* handle, const uint32_t* beats, int64_t n_beats, uint32_t* out, int64_t n_out, uint64_t seed,
                   uint32_t in_hold, uint32_t out_hold, int64_t stall_limit, int64_t mark, int64_t* stats) {
    Model& m = *static_cast<Model*>(handle);
    Vtop& top = *m.top;
    int64_t s[STAT_COUNT] = {0};
    s[STAT_MARK_CYCLE] = s[STAT_FIRST_VALID] = -1;
    int64_t beat = 0, outs = 0, cycle = 0, idle = 0;
    uint64_t state = seed;
    int status = 0;
    while (outs < n_out) {
        const bool taking = top.MPSIM_IN_READY;
        const bool giving = top.MPSIM_OUT_VALID;
        const bool offer = beat < n_beats && !(in_hold && draw(state) < in_hold);
        const bool take = !(out_hold && draw(state) < out_hold);
        if (offer) put(top.MPSIM_IN_PAYLOAD, beats + beat * IN_WORDS);
        top.MPSIM_IN_VALID = offer;
        top.MPSIM_OUT_READY = take;
        bool progress = false;
        if (giving) {
            if (s[STAT_FIRST_VALID] < 0) s[STAT_FIRST_VALID] = cycle;
            if (take) {
                get(top.MPSIM_OUT_PAYLOAD, out + outs * OUT_WORDS);
                ++outs;
                ++s[STAT_OUT_TAKEN];
                progress = true;
            } else {
                ++s[STAT_OUT_STALLS];
            }
        }
        if (offer) {
            if (taking) {
                if (beat == mark) s[STAT_MARK_CYCLE] = cycle;
                ++beat;
                ++s[STAT_IN_TAKEN];
                progress = true;
            } else {
                ++s[STAT_IN_STALLS];
            }
        }
        idle = progress ? 0 : idle + 1;
        if (idle > stall_limit) {
            status = 1;
            break;
        }
        m.edge();
        ++cycle;
    }
    top.MPSIM_IN_VALID = 0;
    top.MPSIM_OUT_READY = 0;
    top.eval();
    s[STAT_CYCLES] = cycle;
    std::memcpy(stats, s, sizeof s);
    return status;
}

int mpsim_exec_stat_count(void) { return STAT_COUNT; }

}  // extern "C"
