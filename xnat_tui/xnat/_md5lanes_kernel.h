/*
 * The MD5 kernel of _md5lanes.c, included once per instruction set: the file
 * that includes it defines KERNEL (the function's name), TARGET, and the
 * vector operations ROTL, F, G, H and I; they are undefined again at the end.
 */
#define STEP(f, a, b, c, d, g, i, s)                                                       \
    a = _mm256_add_epi32(                                                                \
        (b), ROTL(_mm256_add_epi32(_mm256_add_epi32((a), f((b), (c), (d))),               \
                                   _mm256_add_epi32(m[g], _mm256_set1_epi32((int)K[i]))), \
                  s))

TARGET static void KERNEL(uint32_t st[LANES][4], const uint8_t *p[LANES], Py_ssize_t count) {
    const __m256i ones = _mm256_set1_epi32(-1);
    (void)ones; /* only the AVX2 I() uses it */
    __m256i a = _mm256_setr_epi32((int)st[0][0], (int)st[1][0], (int)st[2][0], (int)st[3][0],
                                  (int)st[4][0], (int)st[5][0], (int)st[6][0], (int)st[7][0]);
    __m256i b = _mm256_setr_epi32((int)st[0][1], (int)st[1][1], (int)st[2][1], (int)st[3][1],
                                  (int)st[4][1], (int)st[5][1], (int)st[6][1], (int)st[7][1]);
    __m256i c = _mm256_setr_epi32((int)st[0][2], (int)st[1][2], (int)st[2][2], (int)st[3][2],
                                  (int)st[4][2], (int)st[5][2], (int)st[6][2], (int)st[7][2]);
    __m256i d = _mm256_setr_epi32((int)st[0][3], (int)st[1][3], (int)st[2][3], (int)st[3][3],
                                  (int)st[4][3], (int)st[5][3], (int)st[6][3], (int)st[7][3]);
    for (Py_ssize_t n = 0; n < count; n++) {
        __m256i r[8], m[16];
        for (int j = 0; j < 8; j++)
            r[j] = _mm256_loadu_si256((const __m256i *)(p[j] + n * 64));
        transpose8(r, m);
        for (int j = 0; j < 8; j++)
            r[j] = _mm256_loadu_si256((const __m256i *)(p[j] + n * 64 + 32));
        transpose8(r, m + 8);
        __m256i a0 = a, b0 = b, c0 = c, d0 = d;
        STEP(F, a, b, c, d, 0, 0, 7);   STEP(F, d, a, b, c, 1, 1, 12);
        STEP(F, c, d, a, b, 2, 2, 17);  STEP(F, b, c, d, a, 3, 3, 22);
        STEP(F, a, b, c, d, 4, 4, 7);   STEP(F, d, a, b, c, 5, 5, 12);
        STEP(F, c, d, a, b, 6, 6, 17);  STEP(F, b, c, d, a, 7, 7, 22);
        STEP(F, a, b, c, d, 8, 8, 7);   STEP(F, d, a, b, c, 9, 9, 12);
        STEP(F, c, d, a, b, 10, 10, 17); STEP(F, b, c, d, a, 11, 11, 22);
        STEP(F, a, b, c, d, 12, 12, 7); STEP(F, d, a, b, c, 13, 13, 12);
        STEP(F, c, d, a, b, 14, 14, 17); STEP(F, b, c, d, a, 15, 15, 22);
        STEP(G, a, b, c, d, 1, 16, 5);  STEP(G, d, a, b, c, 6, 17, 9);
        STEP(G, c, d, a, b, 11, 18, 14); STEP(G, b, c, d, a, 0, 19, 20);
        STEP(G, a, b, c, d, 5, 20, 5);  STEP(G, d, a, b, c, 10, 21, 9);
        STEP(G, c, d, a, b, 15, 22, 14); STEP(G, b, c, d, a, 4, 23, 20);
        STEP(G, a, b, c, d, 9, 24, 5);  STEP(G, d, a, b, c, 14, 25, 9);
        STEP(G, c, d, a, b, 3, 26, 14); STEP(G, b, c, d, a, 8, 27, 20);
        STEP(G, a, b, c, d, 13, 28, 5); STEP(G, d, a, b, c, 2, 29, 9);
        STEP(G, c, d, a, b, 7, 30, 14); STEP(G, b, c, d, a, 12, 31, 20);
        STEP(H, a, b, c, d, 5, 32, 4);  STEP(H, d, a, b, c, 8, 33, 11);
        STEP(H, c, d, a, b, 11, 34, 16); STEP(H, b, c, d, a, 14, 35, 23);
        STEP(H, a, b, c, d, 1, 36, 4);  STEP(H, d, a, b, c, 4, 37, 11);
        STEP(H, c, d, a, b, 7, 38, 16); STEP(H, b, c, d, a, 10, 39, 23);
        STEP(H, a, b, c, d, 13, 40, 4); STEP(H, d, a, b, c, 0, 41, 11);
        STEP(H, c, d, a, b, 3, 42, 16); STEP(H, b, c, d, a, 6, 43, 23);
        STEP(H, a, b, c, d, 9, 44, 4);  STEP(H, d, a, b, c, 12, 45, 11);
        STEP(H, c, d, a, b, 15, 46, 16); STEP(H, b, c, d, a, 2, 47, 23);
        STEP(I, a, b, c, d, 0, 48, 6);  STEP(I, d, a, b, c, 7, 49, 10);
        STEP(I, c, d, a, b, 14, 50, 15); STEP(I, b, c, d, a, 5, 51, 21);
        STEP(I, a, b, c, d, 12, 52, 6); STEP(I, d, a, b, c, 3, 53, 10);
        STEP(I, c, d, a, b, 10, 54, 15); STEP(I, b, c, d, a, 1, 55, 21);
        STEP(I, a, b, c, d, 8, 56, 6);  STEP(I, d, a, b, c, 15, 57, 10);
        STEP(I, c, d, a, b, 6, 58, 15); STEP(I, b, c, d, a, 13, 59, 21);
        STEP(I, a, b, c, d, 4, 60, 6);  STEP(I, d, a, b, c, 11, 61, 10);
        STEP(I, c, d, a, b, 2, 62, 15); STEP(I, b, c, d, a, 9, 63, 21);
        a = _mm256_add_epi32(a, a0);
        b = _mm256_add_epi32(b, b0);
        c = _mm256_add_epi32(c, c0);
        d = _mm256_add_epi32(d, d0);
    }
    uint32_t out[4][LANES];
    _mm256_storeu_si256((__m256i *)out[0], a);
    _mm256_storeu_si256((__m256i *)out[1], b);
    _mm256_storeu_si256((__m256i *)out[2], c);
    _mm256_storeu_si256((__m256i *)out[3], d);
    for (int j = 0; j < LANES; j++)
        for (int w = 0; w < 4; w++) st[j][w] = out[w][j];
}

#undef STEP
#undef KERNEL
#undef TARGET
#undef ROTL
#undef F
#undef G
#undef H
#undef I
