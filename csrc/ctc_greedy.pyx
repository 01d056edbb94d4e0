# cython: language_level=3
"""Native CTC greedy (best-path) decoding, GIL released.

For every utterance: argmax over classes per frame (the lowest index wins a tie, as numpy's
argmax), collapse repeated indices, drop the blank. Validation and the label mapping live in
ds2stream/decoding.py; this file only computes.
"""
from libc.stdlib cimport malloc, free


def best_path(const float[:, :, ::1] log_probs, const long long[::1] lengths, int blank,
              bint time_major):
    """Return one list of label indices per utterance.

    log_probs is (T, B, C) when time_major, else (B, T, C); lengths (B,) must lie in [0, T]
    (checked by the caller). Raises ValueError on a NaN, naming utterance and frame.
    """
    cdef Py_ssize_t T = log_probs.shape[0] if time_major else log_probs.shape[1]
    cdef Py_ssize_t B = log_probs.shape[1] if time_major else log_probs.shape[0]
    cdef Py_ssize_t C = log_probs.shape[2]
    cdef Py_ssize_t b, t, c, n, best
    cdef Py_ssize_t frame_stride = B * C if time_major else C
    cdef Py_ssize_t utt_stride = C if time_major else T * C
    cdef const float* base
    cdef const float* row
    cdef float best_value
    cdef int previous
    cdef Py_ssize_t nan_utt = -1, nan_frame = -1
    cdef int* out = <int*> malloc((B * T + 1) * sizeof(int))
    cdef Py_ssize_t* counts = <Py_ssize_t*> malloc((B + 1) * sizeof(Py_ssize_t))
    if out == NULL or counts == NULL:
        free(out); free(counts)
        raise MemoryError("ctc decoding buffers")
    with nogil:
        for b in range(B):
            counts[b] = 0
            if lengths[b] == 0:
                continue
            base = &log_probs[0, 0, 0] + b * utt_stride
            previous = -1
            n = 0
            for t in range(lengths[b]):
                row = base + t * frame_stride
                best = 0
                best_value = row[0]
                for c in range(C):
                    if row[c] != row[c]:
                        nan_utt = b
                        nan_frame = t
                        break
                    if row[c] > best_value:
                        best_value = row[c]
                        best = c
                if nan_utt >= 0:
                    break
                if best != previous and best != blank:
                    out[b * T + n] = <int> best
                    n += 1
                previous = <int> best
            counts[b] = n
            if nan_utt >= 0:
                break
    try:
        if nan_utt >= 0:
            raise ValueError(f"log-probs hold NaN (utterance {nan_utt}, frame {nan_frame})")
        return [[out[b * T + i] for i in range(counts[b])] for b in range(B)]
    finally:
        free(out)
        free(counts)
