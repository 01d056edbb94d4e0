# cython: language_level=3
"""Native log spectrogram features, GIL released: log1p |STFT| (DeepSpeech2's linear bins) or the
log of filterbank energies (mel), normalised per utterance or per frequency bin.

The real FFT of length N = 2M is done as a complex FFT of length M (even samples as real part,
odd samples as imaginary part) followed by the usual split step. The complex FFT is a Stockham
autosort FFT with radix-4/2/3/5 stages. Frames are processed in blocks of BLOCK: every array is
laid out as [index][frame-in-block], so each butterfly's inner loop runs over BLOCK contiguous
floats (or more) and gcc vectorises it. Python-side validation and the numpy reference live in
ds2stream/features.py; this file only computes.
"""
from libc.math cimport cos, sin, sqrt, M_PI
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy

cdef enum:
    BLOCK = 16

cdef enum:
    # Normalisation modes (ds2stream.features.Normalize, in that order).
    NORMALIZE_NONE = 0
    NORMALIZE_UTTERANCE = 1
    NORMALIZE_PER_BIN = 2


cdef inline void _log_block(float* row) noexcept nogil:
    """row[b] = log(row[b]) for positive normal floats, to about 1e-7 relative, for BLOCK values.

    libm's logf is a scalar call and took a third of the kernel's time; this is written as
    branch-free loops over floats and ints (the bits moved by memcpy) that gcc vectorises.
    x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (the integer offset 0x3f3504f3 = bits of
    sqrt(1/2) moves the split point there); log m = 2 atanh(s), s = (m - 1) / (m + 1),
    |s| <= 0.172, and the odd series of atanh to s^9 leaves an error below 1e-8.
    Every constant is a float: a double literal would make gcc compute in scalar double.
    """
    cdef float one = 1.0, ln2 = 0.69314718
    cdef float c3 = 1.0 / 3.0, c5 = 0.2, c7 = 1.0 / 7.0, c9 = 1.0 / 9.0
    cdef float m[BLOCK]
    cdef float e[BLOCK]
    cdef unsigned int bits[BLOCK]
    cdef int exponent[BLOCK]
    cdef float s, s2
    cdef int b
    memcpy(m, row, sizeof(m))
    memcpy(bits, m, sizeof(m))
    for b in range(BLOCK):
        bits[b] = bits[b] + (0x3f800000 - 0x3f3504f3)
        exponent[b] = <int> (bits[b] >> 23) - 127
        bits[b] = (bits[b] & 0x007fffff) + 0x3f3504f3
    memcpy(m, bits, sizeof(m))
    for b in range(BLOCK):
        e[b] = <float> exponent[b]
    for b in range(BLOCK):
        s = (m[b] - one) / (m[b] + one)
        s2 = s * s
        row[b] = e[b] * ln2 + (s + s) * (one + s2 * (c3 + s2 * (c5 + s2 * (c7 + s2 * c9))))


cdef inline void _store(const float* row, float* out, Py_ssize_t valid, double* total,
                        double* total_sq) noexcept nogil:
    """out[b] = row[b] for the block's valid frames, summed (and squared) into the utterance's
    totals for its normalisation."""
    cdef Py_ssize_t b
    cdef double v
    for b in range(valid):
        v = row[b]
        total[0] += v
        total_sq[0] += v * v
        out[b] = row[b]


cdef inline void _log1p_block(float* row) noexcept nogil:
    """row[b] = log(1 + row[b]) for row[b] >= 0, BLOCK values (1 + x is exact enough here: x is a
    magnitude, and the features compress what lies below 1)."""
    cdef float one = 1.0
    cdef int b
    for b in range(BLOCK):
        row[b] = one + row[b]
    _log_block(row)


cdef class SpectrogramPlan:
    """Precomputed window, radices and twiddles for one (n_fft, hop) pair."""
    cdef readonly int n_fft, hop, half, num_bins, num_stages
    cdef float[::1] window
    cdef int radix[32]
    cdef int stage_len[32]
    cdef int stage_stride[32]
    cdef int twiddle_offset[32]
    cdef float[::1] tw_re, tw_im      # per stage, w^(p k) for p < n/r, k < r
    cdef float[::1] split_re, split_im  # exp(-2 pi i k / n_fft), k <= half

    def __init__(self, int n_fft, int hop, float[::1] window):
        if n_fft < 4 or n_fft % 2:
            raise ValueError(f"n_fft must be even and at least 4, got {n_fft}")
        if window.shape[0] != n_fft:
            raise ValueError(f"window has {window.shape[0]} samples, n_fft is {n_fft}")
        if hop < 1:
            raise ValueError(f"hop must be positive, got {hop}")
        self.n_fft = n_fft
        self.hop = hop
        self.half = n_fft // 2
        self.num_bins = self.half + 1
        self.window = window.copy()
        self._plan_stages()
        self._plan_split()

    def _plan_stages(self):
        cdef int rest = self.half, n, s = 1, r, m, p, k, offset = 0, i = 0
        radices = []
        for r in (4, 2, 3, 5):
            while rest % r == 0:
                radices.append(r)
                rest //= r
        if rest != 1:
            raise ValueError(
                f"n_fft/2 = {self.half} must be a product of 2, 3 and 5 (n_fft = {self.n_fft})"
            )
        if len(radices) > 32:
            raise ValueError(f"n_fft = {self.n_fft} is too large")
        import numpy as np
        total = sum(self.half // r * r for r in radices)  # upper bound on twiddle count
        tw_re = np.zeros(total + 1, dtype=np.float32)
        tw_im = np.zeros(total + 1, dtype=np.float32)
        n = self.half
        for r in radices:
            m = n // r
            self.radix[i] = r
            self.stage_len[i] = n
            self.stage_stride[i] = s
            self.twiddle_offset[i] = offset
            for p in range(m):
                for k in range(r):
                    angle = -2.0 * M_PI * p * k / n
                    tw_re[offset + p * r + k] = cos(angle)
                    tw_im[offset + p * r + k] = sin(angle)
            offset += m * r
            n = m
            s *= r
            i += 1
        self.num_stages = i
        self.tw_re = tw_re
        self.tw_im = tw_im

    def _plan_split(self):
        import numpy as np
        k = np.arange(self.num_bins, dtype=np.float64)
        self.split_re = np.cos(-2.0 * np.pi * k / self.n_fft).astype(np.float32)
        self.split_im = np.sin(-2.0 * np.pi * k / self.n_fft).astype(np.float32)

    def compute(self, const float[::1] audio, float[:, ::1] out, int normalize, double std_floor,
                filterbank=None, double log_floor=0.0):
        """Fill out (rows, frames) with the features of audio, then normalise them.

        Without a filterbank: log1p |STFT|, rows = num_bins. With one (float32, rows x num_bins):
        log(max(filterbank @ |STFT|^2, log_floor)). normalize is NORMALIZE_NONE, _UTTERANCE (one
        mean and std) or _PER_BIN (a mean and std per row); std is at least std_floor.
        audio must hold at least half + 1 samples (checked by the caller) so that the reflect
        padding exists; frames = 1 + len(audio) // hop.
        """
        cdef Py_ssize_t n = audio.shape[0]
        cdef Py_ssize_t frames = 1 + n // self.hop
        cdef float[:, ::1] weights
        cdef const float* weights_ptr = NULL
        cdef int rows = self.num_bins
        if n <= self.half:
            raise ValueError(f"audio has {n} samples; at least {self.half + 1} are needed")
        if filterbank is not None:
            weights = filterbank
            if weights.shape[1] != self.num_bins:
                raise ValueError(f"the filterbank has {weights.shape[1]} columns, the spectrum {self.num_bins} bins")
            rows = weights.shape[0]
            weights_ptr = &weights[0, 0]
            if not log_floor > 0:
                raise ValueError(f"log_floor must be positive, got {log_floor}")
        if out.shape[0] != rows or out.shape[1] != frames:
            raise ValueError(
                f"out has shape {(out.shape[0], out.shape[1])}, expected {(rows, frames)}"
            )
        if normalize not in (NORMALIZE_NONE, NORMALIZE_UTTERANCE, NORMALIZE_PER_BIN):
            raise ValueError(f"unknown normalisation mode {normalize}")
        cdef int status
        with nogil:
            status = self._compute(&audio[0], n, &out[0, 0], frames, normalize, std_floor, weights_ptr, rows,
                                   <float> log_floor)
        if status:
            raise MemoryError("spectrogram work buffers")

    cdef int _compute(self, const float* audio, Py_ssize_t n, float* out, Py_ssize_t frames,
                      int normalize, double std_floor, const float* weights, int rows,
                      float log_floor) noexcept nogil:
        cdef int M = self.half, pad = self.half, hop = self.hop, bins = self.num_bins
        cdef Py_ssize_t blocks = (frames + BLOCK - 1) // BLOCK
        # Padded signal: the reflect padding on both sides, and long enough for every frame of
        # the last (possibly partial) block, whichever is longer.
        cdef Py_ssize_t padded_len = (blocks * BLOCK - 1) * hop + self.n_fft
        if padded_len < n + 2 * pad:
            padded_len = n + 2 * pad
        cdef float* padded = <float*> malloc(padded_len * sizeof(float))
        cdef float* work = <float*> malloc(4 * M * BLOCK * sizeof(float))
        cdef float* row = <float*> malloc(BLOCK * sizeof(float))
        # With a filterbank: the power spectrum of a block, [bin][frame-in-block], and each
        # filter's first and last non-zero bin (the triangles are sparse).
        cdef float* power = NULL
        cdef int* first = NULL
        cdef int* last = NULL
        if weights != NULL:
            power = <float*> malloc(bins * BLOCK * sizeof(float))
            first = <int*> malloc(rows * sizeof(int))
            last = <int*> malloc(rows * sizeof(int))
        if padded == NULL or work == NULL or row == NULL or (weights != NULL and (
                power == NULL or first == NULL or last == NULL)):
            free(padded); free(work); free(row); free(power); free(first); free(last)
            return 1
        cdef Py_ssize_t i, block, t0, valid
        cdef int j, b, k
        cdef float weight
        cdef double total = 0.0, total_sq = 0.0, v
        if weights != NULL:
            for j in range(rows):
                first[j], last[j] = bins, -1
                for k in range(bins):
                    if weights[j * bins + k] != 0:
                        if first[j] == bins:
                            first[j] = k
                        last[j] = k
        cdef float* result
        cdef const float* frame
        cdef const float* w = &self.window[0]

        # Reflect padding as numpy's mode="reflect" (librosa center=True), zeros past the end.
        memset(padded, 0, padded_len * sizeof(float))
        memcpy(padded + pad, audio, n * sizeof(float))
        for i in range(1, pad + 1):
            padded[pad - i] = audio[i]
            padded[pad + n - 1 + i] = audio[n - 1 - i]

        for block in range(blocks):
            t0 = block * BLOCK
            valid = frames - t0
            if valid > BLOCK:
                valid = BLOCK
            # Windowed frames, packed as complex z[j] = x[2j] + i x[2j+1], layout [j][b].
            frame = padded + t0 * hop
            for j in range(M):
                for b in range(BLOCK):
                    work[j * BLOCK + b] = frame[b * hop + 2 * j] * w[2 * j]
                    work[(M + j) * BLOCK + b] = frame[b * hop + 2 * j + 1] * w[2 * j + 1]
            result = self._fft(work)
            if weights == NULL:
                for j in range(bins):
                    self._split_magnitude(result, j, row)
                    _log1p_block(row)
                    _store(row, out + j * frames + t0, valid, &total, &total_sq)
                continue
            for j in range(bins):
                self._split_magnitude(result, j, power + j * BLOCK)
                for b in range(BLOCK):
                    power[j * BLOCK + b] = power[j * BLOCK + b] * power[j * BLOCK + b]
            for j in range(rows):
                for b in range(BLOCK):
                    row[b] = 0
                for k in range(first[j], last[j] + 1):
                    weight = weights[j * bins + k]
                    for b in range(BLOCK):
                        row[b] = row[b] + weight * power[k * BLOCK + b]
                for b in range(BLOCK):
                    if row[b] < log_floor:
                        row[b] = log_floor
                _log_block(row)
                _store(row, out + j * frames + t0, valid, &total, &total_sq)

        free(padded); free(work); free(row); free(power); free(first); free(last)
        if normalize == NORMALIZE_UTTERANCE:
            self._normalize(out, rows * frames, total, total_sq, std_floor)
        elif normalize == NORMALIZE_PER_BIN:
            for j in range(rows):
                total = 0.0
                total_sq = 0.0
                for i in range(frames):
                    v = out[j * frames + i]
                    total += v
                    total_sq += v * v
                self._normalize(out + j * frames, frames, total, total_sq, std_floor)
        return 0

    cdef float* _fft(self, float* work) noexcept nogil:
        """Complex FFT of M points on BLOCK frames in place of work's first half; returns the
        buffer (first or second half of work) that holds the result in natural order."""
        cdef int M = self.half
        cdef float* x = work            # re at x, im at x + M*BLOCK
        cdef float* y = work + 2 * M * BLOCK
        cdef float* tmp
        cdef int stage
        for stage in range(self.num_stages):
            self._stage(stage, x, x + M * BLOCK, y, y + M * BLOCK)
            tmp = x
            x = y
            y = tmp
        return x

    cdef void _stage(self, int stage, const float* xr, const float* xi, float* yr, float* yi) noexcept nogil:
        cdef int r = self.radix[stage], n = self.stage_len[stage], s = self.stage_stride[stage]
        cdef int m = n // r, p, k
        cdef Py_ssize_t run = <Py_ssize_t> s * BLOCK, q
        cdef const float* twr = &self.tw_re[self.twiddle_offset[stage]]
        cdef const float* twi = &self.tw_im[self.twiddle_offset[stage]]
        cdef Py_ssize_t a[5]
        cdef Py_ssize_t o[5]
        cdef float wr[5]
        cdef float wi[5]
        for p in range(m):
            for k in range(r):
                a[k] = (<Py_ssize_t> s) * (p + k * m) * BLOCK
                o[k] = (<Py_ssize_t> s) * (r * p + k) * BLOCK
                wr[k] = twr[p * r + k]
                wi[k] = twi[p * r + k]
            if r == 4:
                _radix4(xr, xi, yr, yi, a, o, wr, wi, run)
            elif r == 2:
                _radix2(xr, xi, yr, yi, a, o, wr, wi, run)
            elif r == 3:
                _radix3(xr, xi, yr, yi, a, o, wr, wi, run)
            else:
                _radix5(xr, xi, yr, yi, a, o, wr, wi, run)

    cdef void _split_magnitude(self, const float* z, int k, float* row) noexcept nogil:
        """row[b] = |X[k]| of frame b, from the M-point FFT z of the packed frames."""
        cdef int M = self.half
        cdef const float* zr = z
        cdef const float* zi = z + M * BLOCK
        cdef Py_ssize_t lo = (k % M) * BLOCK, hi = ((M - k) % M) * BLOCK
        cdef float wr = self.split_re[k], wi = self.split_im[k]
        cdef float er, ei, od_r, od_i, xr, xim, half = 0.5
        cdef int b
        for b in range(BLOCK):
            # Even-sample spectrum E = (Z[k] + conj Z[M-k]) / 2, odd O = (Z[k] - conj Z[M-k]) / 2i.
            er = half * (zr[lo + b] + zr[hi + b])
            ei = half * (zi[lo + b] - zi[hi + b])
            od_r = half * (zi[lo + b] + zi[hi + b])
            od_i = half * (zr[hi + b] - zr[lo + b])
            xr = er + wr * od_r - wi * od_i
            xim = ei + wr * od_i + wi * od_r
            row[b] = sqrt(xr * xr + xim * xim)

    cdef void _normalize(self, float* out, Py_ssize_t count, double total, double total_sq,
                         double std_floor) noexcept nogil:
        cdef double mean = total / count
        cdef double var = total_sq / count - mean * mean
        cdef double std = sqrt(var) if var > 0 else 0.0
        if std < std_floor:
            std = std_floor
        cdef float fmean = <float> mean, scale = <float> (1.0 / std)
        cdef Py_ssize_t i
        for i in range(count):
            out[i] = (out[i] - fmean) * scale


# ---- butterflies: each loops over a contiguous run of `run` floats (strides x frames) ----

cdef inline void _radix2(const float* xr, const float* xi, float* yr, float* yi,
                         Py_ssize_t* a, Py_ssize_t* o, float* wr, float* wi,
                         Py_ssize_t run) noexcept nogil:
    cdef Py_ssize_t q
    cdef float ar, ai, br, bi, dr, di
    cdef float w1r = wr[1], w1i = wi[1]
    cdef const float* x0r = xr + a[0]
    cdef const float* x0i = xi + a[0]
    cdef const float* x1r = xr + a[1]
    cdef const float* x1i = xi + a[1]
    cdef float* y0r = yr + o[0]
    cdef float* y0i = yi + o[0]
    cdef float* y1r = yr + o[1]
    cdef float* y1i = yi + o[1]
    for q in range(run):
        ar = x0r[q]; ai = x0i[q]; br = x1r[q]; bi = x1i[q]
        y0r[q] = ar + br
        y0i[q] = ai + bi
        dr = ar - br
        di = ai - bi
        y1r[q] = dr * w1r - di * w1i
        y1i[q] = dr * w1i + di * w1r


cdef inline void _radix4(const float* xr, const float* xi, float* yr, float* yi,
                         Py_ssize_t* a, Py_ssize_t* o, float* wr, float* wi,
                         Py_ssize_t run) noexcept nogil:
    cdef Py_ssize_t q
    cdef float t0r, t0i, t1r, t1i, t2r, t2i, t3r, t3i, cr, ci
    cdef float w1r = wr[1], w1i = wi[1], w2r = wr[2], w2i = wi[2], w3r = wr[3], w3i = wi[3]
    cdef const float* x0r = xr + a[0]
    cdef const float* x0i = xi + a[0]
    cdef const float* x1r = xr + a[1]
    cdef const float* x1i = xi + a[1]
    cdef const float* x2r = xr + a[2]
    cdef const float* x2i = xi + a[2]
    cdef const float* x3r = xr + a[3]
    cdef const float* x3i = xi + a[3]
    cdef float* y0r = yr + o[0]
    cdef float* y0i = yi + o[0]
    cdef float* y1r = yr + o[1]
    cdef float* y1i = yi + o[1]
    cdef float* y2r = yr + o[2]
    cdef float* y2i = yi + o[2]
    cdef float* y3r = yr + o[3]
    cdef float* y3i = yi + o[3]
    for q in range(run):
        t0r = x0r[q] + x2r[q]; t0i = x0i[q] + x2i[q]
        t1r = x0r[q] - x2r[q]; t1i = x0i[q] - x2i[q]
        t2r = x1r[q] + x3r[q]; t2i = x1i[q] + x3i[q]
        t3r = x1r[q] - x3r[q]; t3i = x1i[q] - x3i[q]
        y0r[q] = t0r + t2r
        y0i[q] = t0i + t2i
        # c1 = t1 - i t3
        cr = t1r + t3i; ci = t1i - t3r
        y1r[q] = cr * w1r - ci * w1i
        y1i[q] = cr * w1i + ci * w1r
        cr = t0r - t2r; ci = t0i - t2i
        y2r[q] = cr * w2r - ci * w2i
        y2i[q] = cr * w2i + ci * w2r
        # c3 = t1 + i t3
        cr = t1r - t3i; ci = t1i + t3r
        y3r[q] = cr * w3r - ci * w3i
        y3i[q] = cr * w3i + ci * w3r


cdef inline void _radix3(const float* xr, const float* xi, float* yr, float* yi,
                         Py_ssize_t* a, Py_ssize_t* o, float* wr, float* wi,
                         Py_ssize_t run) noexcept nogil:
    cdef Py_ssize_t q
    cdef float c = -0.5, s = 0.86602540378443864676  # cos, sin of 2 pi / 3
    cdef float br, bi, dr, di, tr, ti, cr, ci
    cdef float w1r = wr[1], w1i = wi[1], w2r = wr[2], w2i = wi[2]
    cdef const float* x0r = xr + a[0]
    cdef const float* x0i = xi + a[0]
    cdef const float* x1r = xr + a[1]
    cdef const float* x1i = xi + a[1]
    cdef const float* x2r = xr + a[2]
    cdef const float* x2i = xi + a[2]
    cdef float* y0r = yr + o[0]
    cdef float* y0i = yi + o[0]
    cdef float* y1r = yr + o[1]
    cdef float* y1i = yi + o[1]
    cdef float* y2r = yr + o[2]
    cdef float* y2i = yi + o[2]
    for q in range(run):
        br = x1r[q] + x2r[q]; bi = x1i[q] + x2i[q]
        dr = x1r[q] - x2r[q]; di = x1i[q] - x2i[q]
        y0r[q] = x0r[q] + br
        y0i[q] = x0i[q] + bi
        tr = x0r[q] + c * br; ti = x0i[q] + c * bi
        # X1 = t - i s d, X2 = t + i s d
        cr = tr + s * di; ci = ti - s * dr
        y1r[q] = cr * w1r - ci * w1i
        y1i[q] = cr * w1i + ci * w1r
        cr = tr - s * di; ci = ti + s * dr
        y2r[q] = cr * w2r - ci * w2i
        y2i[q] = cr * w2i + ci * w2r


cdef inline void _radix5(const float* xr, const float* xi, float* yr, float* yi,
                         Py_ssize_t* a, Py_ssize_t* o, float* wr, float* wi,
                         Py_ssize_t run) noexcept nogil:
    cdef Py_ssize_t q
    # cos and sin of 2 pi / 5 and 4 pi / 5
    cdef float c1 = 0.30901699437494742410, c2 = -0.80901699437494742410
    cdef float s1 = 0.95105651629515357212, s2 = 0.58778525229247312917
    cdef float b1r, b1i, b2r, b2i, d1r, d1i, d2r, d2i, t1r, t1i, t2r, t2i, ur, ui, vr, vi, cr, ci
    cdef float w1r = wr[1], w1i = wi[1], w2r = wr[2], w2i = wi[2]
    cdef float w3r = wr[3], w3i = wi[3], w4r = wr[4], w4i = wi[4]
    cdef const float* x0r = xr + a[0]
    cdef const float* x0i = xi + a[0]
    cdef const float* x1r = xr + a[1]
    cdef const float* x1i = xi + a[1]
    cdef const float* x2r = xr + a[2]
    cdef const float* x2i = xi + a[2]
    cdef const float* x3r = xr + a[3]
    cdef const float* x3i = xi + a[3]
    cdef const float* x4r = xr + a[4]
    cdef const float* x4i = xi + a[4]
    cdef float* y0r = yr + o[0]
    cdef float* y0i = yi + o[0]
    cdef float* y1r = yr + o[1]
    cdef float* y1i = yi + o[1]
    cdef float* y2r = yr + o[2]
    cdef float* y2i = yi + o[2]
    cdef float* y3r = yr + o[3]
    cdef float* y3i = yi + o[3]
    cdef float* y4r = yr + o[4]
    cdef float* y4i = yi + o[4]
    for q in range(run):
        b1r = x1r[q] + x4r[q]; b1i = x1i[q] + x4i[q]
        b2r = x2r[q] + x3r[q]; b2i = x2i[q] + x3i[q]
        d1r = x1r[q] - x4r[q]; d1i = x1i[q] - x4i[q]
        d2r = x2r[q] - x3r[q]; d2i = x2i[q] - x3i[q]
        y0r[q] = x0r[q] + b1r + b2r
        y0i[q] = x0i[q] + b1i + b2i
        t1r = x0r[q] + c1 * b1r + c2 * b2r; t1i = x0i[q] + c1 * b1i + c2 * b2i
        t2r = x0r[q] + c2 * b1r + c1 * b2r; t2i = x0i[q] + c2 * b1i + c1 * b2i
        ur = s1 * d1r + s2 * d2r; ui = s1 * d1i + s2 * d2i    # X1 = t1 - i u, X4 = t1 + i u
        vr = s2 * d1r - s1 * d2r; vi = s2 * d1i - s1 * d2i    # X2 = t2 - i v, X3 = t2 + i v
        cr = t1r + ui; ci = t1i - ur
        y1r[q] = cr * w1r - ci * w1i
        y1i[q] = cr * w1i + ci * w1r
        cr = t2r + vi; ci = t2i - vr
        y2r[q] = cr * w2r - ci * w2i
        y2i[q] = cr * w2i + ci * w2r
        cr = t2r - vi; ci = t2i + vr
        y3r[q] = cr * w3r - ci * w3i
        y3i[q] = cr * w3i + ci * w3r
        cr = t1r - ui; ci = t1i + ur
        y4r[q] = cr * w4r - ci * w4i
        y4i[q] = cr * w4i + ci * w4r
