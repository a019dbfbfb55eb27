/*
 * xnat_tui.xnat._md5lanes: MD5 of up to eight independent streams at once (AVX2).
 *
 * Why C: a download checks every file's MD5 against the server's digest, and MD5
 * is a chain of dependent 32-bit steps: OpenSSL's code does ~0.75 GB/s on one
 * core, which on a small machine costs more CPU than receiving and writing the
 * bytes together. The steps of *different* files are independent, and a 256-bit
 * register holds one 32-bit word of each of eight files: the same chain of
 * instructions advances eight files for about the price of one. The download's
 * worker threads hand their chunks to one batch (see md5.py), and this module
 * runs the batch with the GIL released.
 *
 * level() -> int
 *   which kernel this CPU runs: 2 with AVX-512VL, 1 with AVX2, 0 with neither
 *   (then md5.py uses hashlib and nothing here is called).
 *
 * compress(states, blocks, count[, level]) -> None
 *   states: a list of n writable 16-byte buffers (1 <= n <= 8), each an MD5
 *           state (A, B, C, D as little-endian 32-bit words, as the digest is);
 *   blocks: a list of n buffers, each holding at least count * 64 bytes;
 *   runs the MD5 compression over the first count 64-byte blocks of blocks[i]
 *   into states[i], for every i, with the GIL released. Padding and the message
 *   length are the caller's (md5.py), so that this holds no policy and is
 *   checked against hashlib by the tests. `level` picks a kernel the CPU has
 *   (the tests run both); by default the best.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define LANES 8

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_KERNEL 1
#include <immintrin.h>

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Eight lanes' 64-byte blocks (eight words each half) into sixteen registers,
 * register i holding message word i of every lane. */
__attribute__((target("avx2"))) static inline void transpose8(__m256i r[8], __m256i out[8]) {
    __m256i t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
    }
    for (int j = 0; j < 8; j += 4) {
        u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);
        u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);
        u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);
        u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);
    }
    for (int j = 0; j < 4; j++) {
        out[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
        out[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
    }
}

/* AVX2: rotations are two shifts and an OR; the round functions two or three
 * logic operations. */
#define KERNEL kernel_avx2
#define TARGET __attribute__((target("avx2")))
#define ROTL(x, s) _mm256_or_si256(_mm256_slli_epi32((x), (s)), _mm256_srli_epi32((x), 32 - (s)))
#define F(b, c, d) _mm256_xor_si256((d), _mm256_and_si256((b), _mm256_xor_si256((c), (d))))
#define G(b, c, d) _mm256_xor_si256((c), _mm256_and_si256((d), _mm256_xor_si256((b), (c))))
#define H(b, c, d) _mm256_xor_si256(_mm256_xor_si256((b), (c)), (d))
#define I(b, c, d) _mm256_xor_si256((c), _mm256_or_si256((b), _mm256_xor_si256((d), ones)))
#include "_md5lanes_kernel.h"

/* AVX-512VL on the same eight lanes: one rotate instruction, and each round
 * function one ternary-logic instruction (its truth table as the immediate),
 * which shortens the chain every step waits on. */
#define KERNEL kernel_avx512
#define TARGET __attribute__((target("avx2,avx512f,avx512vl")))
#define ROTL(x, s) _mm256_rol_epi32((x), (s))
#define F(b, c, d) _mm256_ternarylogic_epi32((b), (c), (d), 0xCA)
#define G(b, c, d) _mm256_ternarylogic_epi32((b), (c), (d), 0xE4)
#define H(b, c, d) _mm256_ternarylogic_epi32((b), (c), (d), 0x96)
#define I(b, c, d) _mm256_ternarylogic_epi32((b), (c), (d), 0x39)
#include "_md5lanes_kernel.h"
#else
#define HAVE_KERNEL 0
#endif

/* 0: this CPU cannot run either kernel; 1: AVX2; 2: AVX-512VL. */
static int level(void) {
#if HAVE_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static PyObject *cpu_level(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyLong_FromLong(level());
}

static PyObject *compress(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *states, *blocks;
    Py_ssize_t count;
    int use = level();
    if (!PyArg_ParseTuple(args, "O!O!n|i", &PyList_Type, &states, &PyList_Type, &blocks, &count,
                          &use))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(states);
    if (n < 1 || n > LANES || PyList_GET_SIZE(blocks) != n) {
        PyErr_SetString(PyExc_ValueError, "compress: 1 to 8 states, and one block buffer each");
        return NULL;
    }
    if (count < 0 || count > PY_SSIZE_T_MAX / 64) {
        PyErr_SetString(PyExc_ValueError, "compress: a count of blocks out of range");
        return NULL;
    }
    if (use < 1 || use > level()) {
        PyErr_SetString(PyExc_ValueError, "compress: this CPU cannot run that kernel");
        return NULL;
    }
#if HAVE_KERNEL
    Py_buffer sview[LANES], bview[LANES];
    Py_ssize_t got = 0;
    int ok = 1;
    for (; got < n; got++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(states, got), &sview[got], PyBUF_WRITABLE) < 0) {
            ok = 0;
            break;
        }
        if (PyObject_GetBuffer(PyList_GET_ITEM(blocks, got), &bview[got], PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&sview[got]);
            ok = 0;
            break;
        }
        if (sview[got].len != 16 || bview[got].len < count * 64) {
            PyBuffer_Release(&sview[got]);
            PyBuffer_Release(&bview[got]);
            PyErr_SetString(PyExc_ValueError,
                            "compress: a state is not 16 bytes, or a buffer is short");
            ok = 0;
            break;
        }
    }
    if (ok && count > 0) {
        uint32_t st[LANES][4];
        const uint8_t *p[LANES];
        for (Py_ssize_t j = 0; j < LANES; j++) {
            /* Unused lanes repeat lane 0: computed, then dropped. */
            Py_ssize_t from = j < n ? j : 0;
            memcpy(st[j], sview[from].buf, 16);
            p[j] = (const uint8_t *)bview[from].buf;
        }
        Py_BEGIN_ALLOW_THREADS
        if (use == 2)
            kernel_avx512(st, p, count);
        else
            kernel_avx2(st, p, count);
        Py_END_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < n; j++) memcpy(sview[j].buf, st[j], 16);
    }
    for (Py_ssize_t j = 0; j < got; j++) {
        PyBuffer_Release(&sview[j]);
        PyBuffer_Release(&bview[j]);
    }
    if (!ok) return NULL;
#endif
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"level", cpu_level, METH_NOARGS, "The kernel this CPU runs: 2 AVX-512VL, 1 AVX2, 0 none."},
    {"compress", compress, METH_VARARGS,
     "compress(states, blocks, count): MD5 compression of count blocks, per lane."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_md5lanes",
    "MD5 compression of up to eight streams at once (AVX2).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__md5lanes(void) { return PyModuleDef_Init(&module); }
