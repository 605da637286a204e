/* Depth-metric sums of B maps in one pass over prediction and ground truth (float32), for
 * dabench.metrics.depth_native: the per-pixel terms of dabench.metrics.registry's depth metrics,
 * written out by hand so that the whole pass is one loop with every sum in a register.
 *
 * Per pixel (the same rules as dabench.metrics.depth_torch):
 *   p = clamp(pred, cl, ch)                       (cl = -inf, ch = +inf when not clamping; NaN stays NaN)
 *   ok = valid && lo < gt < hi                     (NaN/inf ground truth fails the range test)
 *   good = 0 < p < inf                             (a counted pixel with !good is reported as bad)
 *   use = ok && good; p, g = use ? (p, gt) : (1, 1)  (every term of an unused pixel is then 0)
 *   r = p / g, e = ln r
 * Sums, in this order: |r - 1|, (p - g)(r - 1), (p - g)^2, e^2, |e|, e   (float lanes per block)
 * Counts:              ok, ok && max(g/p, r) < 1.25^k for k = 1, 2, 3, ok && !good
 *
 * ln r: exponent/mantissa split (m in [sqrt(1/2), sqrt(2))) and a degree-6 polynomial (below; about
 * 1.5e-7 relative), inline; lanes where r is not a positive normal number (0, subnormal, inf,
 * NaN, < 0) take ln p - ln g in double instead (AVX-512: the rare row that has one is redone, so the
 * hot loop has no branch).
 * Work is split in blocks of BLOCK_ROWS rows of one map, taken by threads from a shared counter; each
 * block's sums go to out[block * NT + t] (float lanes added in double), so results do not depend on
 * which thread computed which block.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NF 6
#define NC 5
#define NT (NF + NC)
#define L 16
#define BLOCK_ROWS 16

/* ln(1 + f) = f - f^2/2 + f^3 q(f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]: q's coefficients from
 * numpy.polynomial.polynomial.polyfit(f, (log1p(f) - f + f^2/2) / f^3, 6, w=f^3 / log1p(f)) on 20001
 * Chebyshev nodes; evaluated in float32 as below, ln m is within 1.5e-7 relative (Cephes' degree-8
 * logf polynomial: 1.2e-7), two multiply-adds fewer. */
#define C0 0.33333972591f
#define C1 -0.25000969437f
#define C2 0.19960595429f
#define C3 -0.16587945987f
#define C4 0.14950988628f
#define C5 -0.14197503148f
#define C6 0.085069693125f

int dabench_depth_kernel_layout(void) { return NT * 1000 + BLOCK_ROWS; }

/* ln p - ln g in double for the lanes of mask: where the polynomial does not apply (both variants) */
static void exact_log_lanes(const float* p, const float* g, float* e, unsigned mask) {
    for (int j = 0; j < L; j++)
        if (mask & (1u << j)) e[j] = (float)(log((double)p[j]) - log((double)g[j]));
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

int dabench_depth_kernel_isa(void) { return 512; }

static inline __attribute__((always_inline)) __m512 log_ps(__m512 x) {
    __m512i i = _mm512_castps_si512(x);
    __m512i k = _mm512_srai_epi32(_mm512_sub_epi32(i, _mm512_set1_epi32(0x3f3504f3)), 23);
    __m512 m = _mm512_castsi512_ps(_mm512_sub_epi32(i, _mm512_slli_epi32(k, 23)));
    __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), kf = _mm512_cvtepi32_ps(k), z = _mm512_mul_ps(f, f);
    /* ln(1 + f) = f - f^2/2 + f^3 q(f), q of degree 6 (C0..C6) in Estrin's scheme (short chains) */
    __m512 a01 = _mm512_fmadd_ps(f, _mm512_set1_ps(C1), _mm512_set1_ps(C0));
    __m512 a23 = _mm512_fmadd_ps(f, _mm512_set1_ps(C3), _mm512_set1_ps(C2));
    __m512 a45 = _mm512_fmadd_ps(f, _mm512_set1_ps(C5), _mm512_set1_ps(C4));
    __m512 z2 = _mm512_mul_ps(z, z), fz = _mm512_mul_ps(f, z);
    __m512 q = _mm512_fmadd_ps(_mm512_fmadd_ps(z, _mm512_set1_ps(C6), a45), z2, _mm512_fmadd_ps(a23, z, a01));
    __m512 y = _mm512_fmadd_ps(q, fz, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), z, f));
    return _mm512_fmadd_ps(kf, _mm512_set1_ps(0.693147180559945f), y);
}

/* One chunk of 16 pixels. careful = 0: ln r from the polynomial, and the lanes where it does not
 * apply (r not a positive normal number: 0, subnormal, inf, NaN, < 0) are returned; careful = 1: those
 * lanes take ln p - ln g in double (the caller redoes a row that had any). */
static inline __attribute__((always_inline)) __mmask16 chunk(const float* P, const float* G, __mmask16 kv,
        __m512 vlo, __m512 vhi, __m512 vcl, __m512 vch, __m512 fa[NF], int64_t ca[NC], const int careful) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 pv = _mm512_loadu_ps(P), gv = _mm512_loadu_ps(G);
    pv = _mm512_min_ps(vch, _mm512_max_ps(vcl, pv)); /* a NaN prediction stays NaN (second operand) */
    __mmask16 ok = _mm512_mask_cmp_ps_mask(_mm512_mask_cmp_ps_mask(kv, gv, vlo, _CMP_GT_OQ), gv, vhi, _CMP_LT_OQ);
    /* not good: NaN (0x01, 0x80), +-0 (0x02, 0x04), +-inf (0x08, 0x10), negative (0x40) */
    __mmask16 good = ~_mm512_fpclass_ps_mask(pv, 0xDF);
    __mmask16 use = ok & good;
    /* unused lanes are never computed (masked operations): r = g/p = 1, d = 0 there, so every term is 0 */
    __m512 r = _mm512_mask_div_ps(one, use, pv, gv), d = _mm512_maskz_sub_ps(use, pv, gv);
    __m512 rm1 = _mm512_sub_ps(r, one);
    __m512 e = log_ps(r);
    __mmask16 odd = _mm512_fpclass_ps_mask(r, 0xFF);
    if (careful && odd) {
        float tp[L], tg[L], te[L];
        _mm512_storeu_ps(tp, _mm512_mask_blend_ps(use, one, pv));
        _mm512_storeu_ps(tg, _mm512_mask_blend_ps(use, one, gv));
        _mm512_storeu_ps(te, e);
        exact_log_lanes(tp, tg, te, odd);
        e = _mm512_loadu_ps(te);
    }
    __m512 mx = _mm512_max_ps(_mm512_mask_div_ps(one, use, gv, pv), r);
    fa[0] = _mm512_add_ps(fa[0], _mm512_abs_ps(rm1));
    fa[1] = _mm512_fmadd_ps(d, rm1, fa[1]);
    fa[2] = _mm512_fmadd_ps(d, d, fa[2]);
    fa[3] = _mm512_fmadd_ps(e, e, fa[3]);
    fa[4] = _mm512_add_ps(fa[4], _mm512_abs_ps(e));
    fa[5] = _mm512_add_ps(fa[5], e);
    ca[0] += __builtin_popcount(ok);
    ca[1] += __builtin_popcount(_mm512_mask_cmp_ps_mask(ok, mx, _mm512_set1_ps(1.25f), _CMP_LT_OQ));
    ca[2] += __builtin_popcount(_mm512_mask_cmp_ps_mask(ok, mx, _mm512_set1_ps(1.5625f), _CMP_LT_OQ));
    ca[3] += __builtin_popcount(_mm512_mask_cmp_ps_mask(ok, mx, _mm512_set1_ps(1.953125f), _CMP_LT_OQ));
    ca[4] += __builtin_popcount(ok & ~good);
    return odd;
}

/* integer arithmetic: the address may lie past the array's end (a prefetch never faults) */
#define PREFETCH_NEXT_ROW(ptr, stride) _mm_prefetch((const char*)((uintptr_t)(ptr) + (uintptr_t)(stride) * 4u), _MM_HINT_T0)

/* One row into fa/ca; returns the lanes the polynomial did not cover (careful = 0). */
static inline __attribute__((always_inline)) __mmask16 row(const float* P, const float* G, const uint8_t* V,
        int64_t W, int64_t psh, int64_t gsh, __m512 vlo, __m512 vhi, __m512 vcl, __m512 vch, __m512 fa[NF], int64_t ca[NC], const int careful) {
    __mmask16 odd = 0;
    int64_t x = 0;
    /* the same columns of the next row are prefetched: rows of a crop are short streams that cross
     * pages, and the hardware prefetcher does not keep ahead of them (bench: 1.62x -> 1.44x the read floor) */
    if (V) {
        for (; x + L <= W; x += L) {
            PREFETCH_NEXT_ROW(P + x, psh);
            PREFETCH_NEXT_ROW(G + x, gsh);
            __m128i v = _mm_loadu_si128((const __m128i*)(V + x));
            odd |= chunk(P + x, G + x, _mm_test_epi8_mask(v, v), vlo, vhi, vcl, vch, fa, ca, careful);
        }
    } else {
        for (; x + L <= W; x += L) {
            PREFETCH_NEXT_ROW(P + x, psh);
            PREFETCH_NEXT_ROW(G + x, gsh);
            odd |= chunk(P + x, G + x, 0xffff, vlo, vhi, vcl, vch, fa, ca, careful);
        }
    }
    if (x < W) { /* the row's tail: absent lanes are p = g = 1 and not counted */
        float tp[L], tg[L];
        __mmask16 kv = 0;
        for (int j = 0; j < L; j++) {
            int in = x + j < W;
            tp[j] = in ? P[x + j] : 1.0f;
            tg[j] = in ? G[x + j] : 1.0f;
            if (in && (!V || V[x + j])) kv |= (__mmask16)(1u << j);
        }
        odd |= chunk(tp, tg, kv, vlo, vhi, vcl, vch, fa, ca, careful);
    }
    return odd;
}

static void block(const float* pred, const float* gt, const uint8_t* valid, int64_t y0, int64_t y1, int64_t W,
                  int64_t psh, int64_t gsh, int64_t vsh, float lo, float hi, float cl, float ch, double* o) {
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), vcl = _mm512_set1_ps(cl), vch = _mm512_set1_ps(ch);
    __m512 fa[NF];
    int64_t ca[NC] = {0};
    for (int t = 0; t < NF; t++) fa[t] = _mm512_setzero_ps();
    for (int64_t y = y0; y < y1; y++) {
        const float* P = pred + y * psh;
        const float* G = gt + y * gsh;
        const uint8_t* V = valid ? valid + y * vsh : 0;
        __m512 rf[NF];
        int64_t rc[NC] = {0};
        for (int t = 0; t < NF; t++) rf[t] = _mm512_setzero_ps();
        if (row(P, G, V, W, psh, gsh, vlo, vhi, vcl, vch, rf, rc, 0)) { /* rare: redo the row with exact logs where needed */
            for (int t = 0; t < NF; t++) rf[t] = _mm512_setzero_ps();
            for (int t = 0; t < NC; t++) rc[t] = 0;
            row(P, G, V, W, psh, gsh, vlo, vhi, vcl, vch, rf, rc, 1);
        }
        for (int t = 0; t < NF; t++) fa[t] = _mm512_add_ps(fa[t], rf[t]);
        for (int t = 0; t < NC; t++) ca[t] += rc[t];
    }
    for (int t = 0; t < NF; t++) {
        float lanes[L];
        _mm512_storeu_ps(lanes, fa[t]);
        double s = 0.0;
        for (int j = 0; j < L; j++) s += lanes[j];
        o[t] = s;
    }
    for (int t = 0; t < NC; t++) o[NF + t] = (double)ca[t];
}

#else /* portable: GCC/Clang vector extensions (SSE/AVX2/NEON as the compiler targets) */

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));

int dabench_depth_kernel_isa(void) { return 0; }


static inline vf splat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static inline vf sel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
static inline vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }

static inline vf log_v(vf x) {
    vi i = (vi)x;
    vi k = (i - 0x3f3504f3) >> 23;
    vf m = (vf)(i - (k << 23));
    vf f = m - 1.0f, kf = __builtin_convertvector(k, vf), z = f * f;
    vf a01 = f * C1 + C0, a23 = f * C3 + C2, a45 = f * C5 + C4;
    vf q = (z * C6 + a45) * (z * z) + (a23 * z + a01);
    return kf * 0.693147180559945f + (q * (f * z) + (f - 0.5f * z));
}

static inline void chunk(const float* P, const float* G, const uint8_t* V, float lo, float hi, float cl, float ch,
                         vf fa[NF], vi ca[NC]) {
    vf pv, gv;
    vi vm;
    memcpy(&pv, P, sizeof pv);
    memcpy(&gv, G, sizeof gv);
    for (int j = 0; j < L; j++) vm[j] = V[j] ? -1 : 0;
    pv = sel(pv < cl, splat(cl), pv);
    pv = sel(pv > ch, splat(ch), pv);
    vi ok = (gv > lo) & (gv < hi) & vm;
    vi good = (pv > 0.0f) & (pv < INFINITY);
    vi use = ok & good;
    vf one = splat(1.0f);
    vf p = sel(use, pv, one), g = sel(use, gv, one);
    vf r = p / g, d = p - g, rm1 = r - 1.0f;
    vf e = log_v(r);
    vi odd = ~((r >= 1.17549435e-38f) & (r <= 3.40282347e+38f)); /* not a positive normal number */
    unsigned mask = 0;
    for (int j = 0; j < L; j++) mask |= odd[j] ? 1u << j : 0u;
    if (__builtin_expect(mask != 0, 0)) {
        float tp[L], tg[L], te[L];
        memcpy(tp, &p, sizeof tp);
        memcpy(tg, &g, sizeof tg);
        memcpy(te, &e, sizeof te);
        exact_log_lanes(tp, tg, te, mask);
        memcpy(&e, te, sizeof te);
    }
    vf q = g / p;
    vf mx = sel(q > r, q, r);
    fa[0] += vabs(rm1);
    fa[1] += d * rm1;
    fa[2] += d * d;
    fa[3] += e * e;
    fa[4] += vabs(e);
    fa[5] += e;
    ca[0] -= ok;
    ca[1] -= ok & (mx < 1.25f);
    ca[2] -= ok & (mx < 1.5625f);
    ca[3] -= ok & (mx < 1.953125f);
    ca[4] -= ok & ~good;
}

static void block(const float* pred, const float* gt, const uint8_t* valid, int64_t y0, int64_t y1, int64_t W,
                  int64_t psh, int64_t gsh, int64_t vsh, float lo, float hi, float cl, float ch, double* o) {
    static const uint8_t all[L] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    vf fa[NF];
    vi ca[NC];
    for (int t = 0; t < NF; t++) fa[t] = splat(0.0f);
    for (int t = 0; t < NC; t++) ca[t] = (vi){0};
    for (int64_t y = y0; y < y1; y++) {
        const float* P = pred + y * psh;
        const float* G = gt + y * gsh;
        const uint8_t* V = valid ? valid + y * vsh : 0;
        int64_t x = 0;
        for (; x + L <= W; x += L) chunk(P + x, G + x, V ? V + x : all, lo, hi, cl, ch, fa, ca);
        if (x < W) {
            float tp[L], tg[L];
            uint8_t tv[L];
            for (int j = 0; j < L; j++) {
                int in = x + j < W;
                tp[j] = in ? P[x + j] : 1.0f;
                tg[j] = in ? G[x + j] : 1.0f;
                tv[j] = in && (!V || V[x + j]);
            }
            chunk(tp, tg, tv, lo, hi, cl, ch, fa, ca);
        }
    }
    for (int t = 0; t < NF; t++) {
        double s = 0.0;
        for (int j = 0; j < L; j++) s += fa[t][j];
        o[t] = s;
    }
    for (int t = 0; t < NC; t++) {
        int64_t s = 0;
        for (int j = 0; j < L; j++) s += ca[t][j];
        o[NF + t] = (double)s;
    }
}
#endif

/* Blocks of B maps of H x W (block k: map k / nby, rows (k % nby) * BLOCK_ROWS ..., nby =
 * ceil(H / BLOCK_ROWS)); strides in elements, the last dimension contiguous; valid may be NULL
 * (every pixel) and vsb = 0 shares one H x W mask. out: NT doubles per block. Every thread that
 * calls this with the same counter *next takes the next block until nblocks are done, so a thread
 * that starts late (woken up after the caller began) simply takes fewer. */
void dabench_depth_sums_shared(const float* pred, const float* gt, const uint8_t* valid, int64_t H, int64_t W,
                               int64_t psb, int64_t psh, int64_t gsb, int64_t gsh, int64_t vsb, int64_t vsh,
                               float lo, float hi, int clamp, int64_t* next, int64_t nblocks, double* out) {
    int64_t nby = (H + BLOCK_ROWS - 1) / BLOCK_ROWS;
    float cl = clamp ? lo : -INFINITY, ch = clamp ? hi : INFINITY;
    for (;;) {
        int64_t k = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
        if (k >= nblocks) break;
        int64_t b = k / nby, y0 = (k % nby) * BLOCK_ROWS;
        int64_t y1 = y0 + BLOCK_ROWS < H ? y0 + BLOCK_ROWS : H;
        block(pred + b * psb, gt + b * gsb, valid ? valid + b * vsb : 0, y0, y1, W, psh, gsh, vsh, lo, hi, cl, ch,
              out + k * NT);
    }
}

/* ---- helper threads (POSIX threads: they need no GIL, so the caller can wake them before its own
 * Python checks; waking an idle core took 0.15 ms median, 0.35 ms at p90, on the development VM) ----
 * dabench_depth_wake(n) makes n helpers exist and wakes them; a woken helper spins (2 ms at most)
 * for a published job, takes blocks from the job's counter like the caller, and sleeps again.
 * dabench_depth_sums_parallel publishes the job, computes blocks itself, closes the job and waits for
 * the helpers inside it; a helper that arrives after the close does not touch the job. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELPERS 63

typedef struct {
    const float *pred, *gt;
    const uint8_t* valid;
    int64_t H, W, psb, psh, gsb, gsh, vsb, vsh;
    float lo, hi;
    int clamp;
    int64_t *next, nblocks;
    double* out;
} job_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static int pool_n = 0;
static pid_t pool_pid = 0;
static int64_t wake_seq = 0;   /* under pool_mu */
static job_t job;              /* written by the caller before job_seq is released */
static int64_t job_seq = 0;
static int64_t closed_seq = 0;
static int64_t active = 0;
static const int64_t spin_ns = 2000000; /* a woken helper gives up after 2 ms without a job */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void run_job(const job_t* j) {
    dabench_depth_sums_shared(j->pred, j->gt, j->valid, j->H, j->W, j->psb, j->psh, j->gsb, j->gsh, j->vsb, j->vsh,
                              j->lo, j->hi, j->clamp, j->next, j->nblocks, j->out);
}

static void* helper_main(void* arg) {
    (void)arg;
    int64_t seen_job = __atomic_load_n(&job_seq, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&pool_mu);
    int64_t seen_wake = wake_seq;
    for (;;) {
        while (wake_seq == seen_wake) pthread_cond_wait(&pool_cv, &pool_mu);
        seen_wake = wake_seq;
        pthread_mutex_unlock(&pool_mu);
        int64_t start = now_ns();
        for (int64_t i = 1;; i++) {
            int64_t js = __atomic_load_n(&job_seq, __ATOMIC_ACQUIRE);
            if (js != seen_job) {
                seen_job = js;
                __atomic_fetch_add(&active, 1, __ATOMIC_SEQ_CST);
                int open = __atomic_load_n(&closed_seq, __ATOMIC_SEQ_CST) != js;
                if (open) run_job(&job);
                __atomic_fetch_sub(&active, 1, __ATOMIC_SEQ_CST);
                if (open) break;
            }
            if ((i & 255) == 0 && now_ns() - start > spin_ns) break;
            cpu_relax();
        }
        pthread_mutex_lock(&pool_mu);
    }
    return 0;
}

/* Make n helpers exist (at most MAX_HELPERS; a forked child starts its own) and wake them. Returns
 * how many exist. */
int dabench_depth_wake(int n) {
    if (n > MAX_HELPERS) n = MAX_HELPERS;
    pid_t pid = getpid();
    if (pool_pid != pid) { /* a fork: the parent's helpers do not exist here */
        pthread_mutex_init(&pool_mu, 0);
        pthread_cond_init(&pool_cv, 0);
        pthread_mutex_init(&call_mu, 0);
        pool_n = 0;
        active = 0;
        pool_pid = pid;
    }
    pthread_mutex_lock(&pool_mu);
    while (pool_n < n) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, helper_main, 0);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool_n++;
    }
    wake_seq++;
    pthread_cond_broadcast(&pool_cv);
    int have = pool_n;
    pthread_mutex_unlock(&pool_mu);
    return have;
}

/* All blocks with this thread and up to threads - 1 helpers (woken now unless already awake). */
void dabench_depth_sums_parallel(const float* pred, const float* gt, const uint8_t* valid, int64_t H, int64_t W,
                                 int64_t psb, int64_t psh, int64_t gsb, int64_t gsh, int64_t vsb, int64_t vsh,
                                 float lo, float hi, int clamp, int64_t* next, int64_t nblocks, double* out,
                                 int threads, int woken) {
    /* woken: the caller called dabench_depth_wake(threads - 1) just before (waking twice would make
     * the helpers spin once more for nothing) */
    int have = threads <= 1 ? 0 : woken ? pool_n : dabench_depth_wake(threads - 1);
    if (have == 0 || pool_pid != getpid()) {
        dabench_depth_sums_shared(pred, gt, valid, H, W, psb, psh, gsb, gsh, vsb, vsh, lo, hi, clamp, next, nblocks,
                                  out);
        return;
    }
    pthread_mutex_lock(&call_mu); /* one published job at a time */
    job = (job_t){pred, gt, valid, H, W, psb, psh, gsb, gsh, vsb, vsh, lo, hi, clamp, next, nblocks, out};
    int64_t js = __atomic_load_n(&job_seq, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&job_seq, js, __ATOMIC_RELEASE);
    run_job(&job);
    __atomic_store_n(&closed_seq, js, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&active, __ATOMIC_SEQ_CST) != 0) cpu_relax();
    pthread_mutex_unlock(&call_mu);
}

/* ---- scoring one aligned map (dabench.eval.fastscore): float64 throughout, one thread per call ----
 * The evaluation loop scores each map on its scoring thread (the GIL is released), so these entry points
 * are single-threaded. Everything is computed in double exactly as dabench.eval.scoring's numpy
 * reference writes it (multiply, then add: no fused multiply-add, hence FP_CONTRACT off), so the
 * score-space maps equal the reference's bit for bit and the delta counts are exact; the sums differ only
 * in summation order, ln only by the series below (about 1e-16 relative).
 *
 * dabench_align_sums: over the valid pixels (optionally only the columns cols[0..ncols) of every row:
 * Marigold's subsample), with x = pred, or 1 / max(pred, 1e-8) (recip_in), and y = gt, or 1 / gt
 * (recip_gt), and (p0, g0) = (x, y) at the first such pixel when shift is set (else 0):
 *   out = n, sum(x - p0), sum(y - g0), sum((x - p0)^2), sum((x - p0)(y - g0)), p0, g0,
 *         count(gt not finite or <= 0), count(x not finite)
 * dabench_score_map: per pixel a = clip(x * s + t, lo1, hi1); p = recip_out ? 1 / a : a; p = max(p, lo2);
 * g = recip_gt ? 1 / gt : gt; then the NT sums of dabench_depth_sums_shared (same column order, |e|
 * unscaled) over the valid pixels, with bad = valid pixels where p is not in (0, inf), plus out[NT] =
 * valid pixels where g is not in (0, inf). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#define LD 8
#if defined(__clang__)
#define SCORE_ATTR
#else
#define SCORE_ATTR __attribute__((optimize("fp-contract=off")))
#endif

static const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
#define DMAX 1.79769313486231570815e+308
#define DMIN 2.2250738585072014e-308

/* 8 doubles per vector (GCC/Clang vector extensions: AVX-512, or split by the compiler) */
typedef double vd __attribute__((vector_size(64)));
typedef int64_t vl __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef uint8_t vb8 __attribute__((vector_size(8)));

static inline vd dsplat(double x) { return (vd){x, x, x, x, x, x, x, x}; }
static inline vd vsel(vl m, vd a, vd b) { return (vd)(((vl)a & m) | ((vl)b & ~m)); }
static inline vd ones(vl m) { return vsel(m, dsplat(1.0), dsplat(0.0)); }
static inline vd vmax(vd a, vd b) { return vsel(a > b, a, b); } /* a > b ? a : b, as numpy's maximum for non-NaN */
static inline vd vmin(vd a, vd b) { return vsel(a < b, a, b); }

/* ln r for positive normal doubles: r = 2^k m, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(u),
 * u = (m - 1) / (m + 1), |u| <= 0.1716; the odd series to u^19 leaves < 1e-16 relative. */
static inline vd ln_vec(vd r) {
    vl i = (vl)r;
    vl k = (i - 0x3fe6a09e667f3bcdLL) >> 52;
    vd m = (vd)(i - (k << 52));
    vd u = (m - 1.0) / (m + 1.0), z = u * u;
    vd q = dsplat(1.0 / 19);
    q = q * z + 1.0 / 17; q = q * z + 1.0 / 15; q = q * z + 1.0 / 13; q = q * z + 1.0 / 11;
    q = q * z + 1.0 / 9; q = q * z + 1.0 / 7; q = q * z + 1.0 / 5; q = q * z + 1.0 / 3; q = q * z + 1.0;
    vd kd = __builtin_convertvector(k, vd);
    return kd * LN2_HI + (kd * LN2_LO + 2.0 * u * q);
}

static inline void load8(const float* P, const float* G, const uint8_t* V, int64_t n, vd* p, vd* g, vl* v) {
    float tp[8] = {1, 1, 1, 1, 1, 1, 1, 1}, tg[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    uint8_t tv[8] = {0};
    const float *pp = P, *gp = G;
    const uint8_t* vp = V;
    if (n < 8) {
        for (int64_t j = 0; j < n; j++) { tp[j] = P[j]; tg[j] = G[j]; tv[j] = V[j]; }
        pp = tp; gp = tg; vp = tv;
    }
    vf8 pf, gf;
    vb8 vb;
    memcpy(&pf, pp, sizeof pf);
    memcpy(&gf, gp, sizeof gf);
    memcpy(&vb, vp, sizeof vb);
    *p = __builtin_convertvector(pf, vd);
    *g = __builtin_convertvector(gf, vd);
    *v = __builtin_convertvector(vb, vl) != 0;
}

SCORE_ATTR void dabench_align_sums(const float* pred, const float* gt, const uint8_t* valid, int64_t H, int64_t W,
                                   int64_t psh, int64_t gsh, int64_t vsh, const int64_t* cols, int64_t ncols,
                                   int recip_in, int recip_gt, int shift, double* out) {
    double p0 = 0.0, g0 = 0.0;
    int64_t nc = cols ? ncols : W;
    if (shift) { /* the first valid pixel: sums of differences from it do not cancel */
        int found = 0;
        for (int64_t y = 0; y < H && !found; y++)
            for (int64_t j = 0; j < nc; j++) {
                int64_t x = cols ? cols[j] : j;
                if (valid[y * vsh + x]) {
                    double xv = pred[y * psh + x], gv = gt[y * gsh + x];
                    p0 = recip_in ? 1.0 / (xv > 1e-8 ? xv : 1e-8) : xv;
                    g0 = recip_gt ? 1.0 / gv : gv;
                    found = 1;
                    break;
                }
            }
        if (!(p0 - p0 == 0.0)) p0 = 0.0; /* not finite: reported as bad below, no shift */
        if (!(g0 - g0 == 0.0)) g0 = 0.0;
    }
    vd n = dsplat(0), sp = n, sg = n, spp = n, spg = n, bg = n, bp = n;
    vd vp0 = dsplat(p0), vg0 = dsplat(g0), tiny = dsplat(1e-8), zero = dsplat(0.0);
    float tp[8], tg[8];
    uint8_t tv[8];
    for (int64_t y = 0; y < H; y++) {
        const float* P = pred + y * psh;
        const float* G = gt + y * gsh;
        const uint8_t* V = valid + y * vsh;
        for (int64_t j0 = 0; j0 < nc; j0 += 8) {
            vd xv, gv;
            vl in;
            if (cols) { /* Marigold's subsample: gather the kept columns */
                int64_t k = nc - j0 < 8 ? nc - j0 : 8;
                for (int64_t j = 0; j < 8; j++) {
                    int64_t x = cols[j0 + (j < k ? j : 0)];
                    tp[j] = P[x]; tg[j] = G[x]; tv[j] = j < k ? V[x] : 0;
                }
                load8(tp, tg, tv, 8, &xv, &gv, &in);
            } else {
                load8(P + j0, G + j0, V + j0, nc - j0, &xv, &gv, &in);
            }
            vd xx = recip_in ? 1.0 / vmax(xv, tiny) : xv; /* a division only where the protocol has one */
            vl gbad = ~((gv > 0.0) & (gv <= DMAX));
            vl xbad = ~(xx - xx == 0.0);
            vd yy = recip_gt ? 1.0 / gv : gv;
            vd dp = vsel(in & ~xbad, xx - vp0, zero);
            vd dg = vsel(in & ~gbad, yy - vg0, zero);
            n += ones(in);
            sp += dp;
            sg += dg;
            spp += dp * dp;
            spg += dp * dg;
            bg += ones(in & gbad);
            bp += ones(in & xbad);
        }
    }
    vd acc[7] = {n, sp, sg, spp, spg, bg, bp};
    double r[7];
    for (int t = 0; t < 7; t++) {
        r[t] = 0.0;
        for (int j = 0; j < 8; j++) r[t] += acc[t][j];
    }
    out[0] = r[0]; out[1] = r[1]; out[2] = r[2]; out[3] = r[3]; out[4] = r[4];
    out[5] = p0; out[6] = g0; out[7] = r[5]; out[8] = r[6];
}

typedef struct {
    vd s, t, lo1, hi1, lo2, tiny;
    int rin, rout, rgt;
} score_consts;

/* one vector of 8 pixels into the accumulators (see dabench_score_map); returns the lanes whose ratio is
 * not a positive normal number (ln from libm for them) */
static inline vl score8(vd xv, vd gv, vl ok, const score_consts* c, vd f[6], vd cnt[6]) {
    vd xx = c->rin ? 1.0 / vmax(xv, c->tiny) : xv; /* loop-invariant branches: a division only where needed */
    vd a = xx * c->s;
    a = a + c->t;
    a = vmin(vmax(a, c->lo1), c->hi1);
    vd p = vmax(c->rout ? 1.0 / a : a, c->lo2);
    vd g = c->rgt ? 1.0 / gv : gv;
    vl good = (p > 0.0) & (p <= DMAX), gok = (g > 0.0) & (g <= DMAX);
    vl use = ok & good & gok;
    vd one = dsplat(1.0);
    p = vsel(use, p, one);
    g = vsel(use, g, one);
    vd r = p / g, q = g / p, d = p - g, rm1 = r - 1.0;
    vl odd = ~((r >= DMIN) & (r <= DMAX));
    vd e = ln_vec(vsel(odd, one, r));
    vd mx = vmax(q, r);
    f[0] += vsel(rm1 < 0.0, -rm1, rm1);
    f[1] += d * rm1;
    f[2] += d * d;
    f[3] += e * e;
    f[4] += vsel(e < 0.0, -e, e);
    f[5] += e;
    cnt[0] += ones(ok);
    cnt[1] += ones(ok & (mx < 1.25));
    cnt[2] += ones(ok & (mx < 1.5625));
    cnt[3] += ones(ok & (mx < 1.953125));
    cnt[4] += ones(ok & ~good);
    cnt[5] += ones(ok & ~gok);
    return odd;
}

SCORE_ATTR void dabench_score_map(const float* pred, const float* gt, const uint8_t* valid, int64_t H, int64_t W,
                                  int64_t psh, int64_t gsh, int64_t vsh, const double* cfg, double* out) {
    score_consts c = {dsplat(cfg[0]), dsplat(cfg[1]), dsplat(cfg[2]), dsplat(cfg[3]), dsplat(cfg[4]), dsplat(1e-8),
                      cfg[5] != 0.0, cfg[6] != 0.0, cfg[7] != 0.0};
    double tot[NT + 1] = {0};
    for (int64_t y = 0; y < H; y++) {
        const float* P = pred + y * psh;
        const float* G = gt + y * gsh;
        const uint8_t* V = valid + y * vsh;
        vd f[6], cnt[6];
        for (int k = 0; k < 6; k++) f[k] = cnt[k] = dsplat(0.0);
        vl odd = (vl){0};
        for (int64_t x0 = 0; x0 < W; x0 += 8) {
            vd xv, gv;
            vl ok;
            load8(P + x0, G + x0, V + x0, W - x0, &xv, &gv, &ok);
            odd |= score8(xv, gv, ok, &c, f, cnt);
        }
        int any_odd = 0;
        for (int j = 0; j < 8; j++) any_odd |= odd[j] != 0;
        if (any_odd) { /* rare: a ratio that is 0, subnormal or inf: the log sums again, ln from libm */
            double s3 = 0.0, s4 = 0.0, s5 = 0.0;
            for (int64_t x = 0; x < W; x++) {
                double xv = P[x], gv = G[x];
                double xx = cfg[5] != 0.0 ? 1.0 / (xv > 1e-8 ? xv : 1e-8) : xv;
                double a = xx * cfg[0];
                a = a + cfg[1];
                a = a > cfg[2] ? a : cfg[2];
                a = a < cfg[3] ? a : cfg[3];
                double p = cfg[6] != 0.0 ? 1.0 / a : a;
                p = p > cfg[4] ? p : cfg[4];
                double g = cfg[7] != 0.0 ? 1.0 / gv : gv;
                int use = V[x] && p > 0.0 && p <= DMAX && g > 0.0 && g <= DMAX;
                double e = use ? log(p / g) : 0.0;
                s3 += e * e;
                s4 += e < 0.0 ? -e : e;
                s5 += e;
            }
            f[3] = f[4] = f[5] = dsplat(0.0);
            f[3][0] = s3; f[4][0] = s4; f[5][0] = s5;
        }
        for (int k = 0; k < 6; k++) {
            double a = 0.0, b = 0.0;
            for (int j = 0; j < 8; j++) { a += f[k][j]; b += cnt[k][j]; }
            tot[k] += a;
            tot[6 + k] += b;
        }
    }
    for (int k = 0; k < NT + 1; k++) out[k] = tot[k];
}
