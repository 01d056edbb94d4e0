"""`ds2stream serve` as a separate process on loopback, driven over HTTP as clients would: bad
requests are answered with a 4xx that says why, and the server goes on; the CTC alignment behind
word times. (Answers of a trained model, batching and the page in a browser: test_end_to_end.py,
on the demo's model.)"""
import concurrent.futures
import io
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile

from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from ds2stream.data.audio import read_audio
from ds2stream.data.text import LABELS
from ds2stream.features import FeatureConfig
from ds2stream.inference.align import ctc_align, word_times
from ds2stream.inference.forward_thread import TICK, UPLOAD, ForwardThread
from ds2stream.inference.serve import forward_slices, padded_frames, padded_rows
from ds2stream.network import build_model
from ds2stream.presets import PRESETS
from testkit.servers import multipart_body, post_audio, served


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """An untrained tiny model (what it says does not matter here)."""
    model = PRESETS["tiny"].model
    path = tmp_path_factory.mktemp("serve") / "untrained.ckpt"
    save_checkpoint(build_model(model), path, {"format": CHECKPOINT_FORMAT, "labels": LABELS,
                                               "model_config": model.to_dict(),
                                               "feature_config": FeatureConfig().to_dict()})
    return path


@pytest.fixture(scope="module")
def server(untrained_checkpoint):
    """The untrained model served with small limits."""
    with served(untrained_checkpoint, "--max-upload-mb", "0.2", "--max-seconds", "4") as url:
        yield url


def test_bad_requests_get_a_4xx_that_says_why_and_the_server_goes_on(server, sample_flacs):
    good = sample_flacs[0].read_bytes()
    samples, rate = read_audio(sample_flacs[0])

    def wav(array, channels=1):
        buffer = io.BytesIO()
        soundfile.write(buffer, array if channels == 1 else np.stack([array] * channels, 1), rate, format="WAV",
                        subtype="PCM_16")
        return buffer.getvalue()

    noise = np.random.default_rng(0).bytes(300_000)
    cases = [
        (b"hello", "text/plain", 415, "is not audio"),
        (b"RIFF0000WAVEjunk", "audio/wav", 422, "cannot decode audio"),
        (b"", "audio/flac", 422, "empty upload"),
        (wav(np.tile(samples, int(5 * rate / len(samples)) + 1)), "audio/wav", 422, "longer than 4 s"),
        (wav(samples, channels=2), "audio/wav", 422, "2 channels"),
        (wav(samples[:100]), "audio/wav", 422, "less than one window"),
        (noise, "audio/flac", 413, "larger than 0.2 MB"),
        (*multipart_body("upload", good), 400, "without a field named 'file'"),
        (*multipart_body("file", noise), 413, "larger than 0.2 MB"),
    ]
    for body, content_type, status, message in cases:
        got, answer = post_audio(server, body, content_type)
        assert (got, message in answer.get("error", "")) == (status, True), (status, message, answer)
    host, port = server.removeprefix("http://").split(":")
    for _ in range(3):  # clients that send a whole request and go away before the answer
        with socket.create_connection((host, int(port))) as client:
            client.sendall(f"POST /transcribe HTTP/1.1\r\nHost: {host}\r\nContent-Type: audio/flac\r\n"
                           f"Content-Length: {len(good)}\r\n\r\n".encode() + good)
    status, answer = post_audio(server, good, "audio/flac")
    assert status == 200 and answer["duration"] == pytest.approx(len(samples) / rate, abs=1e-3)


def test_a_burst_past_the_queue_is_refused_with_retry_after_and_the_accepted_requests_are_answered(
        untrained_checkpoint, sample_flacs):
    # Two utterances waiting at most (queued, or their features being computed), one per forward
    # pass: of 12 requests of 8 s of audio sent together, the server answers some and refuses the
    # rest at once (503, Retry-After), and says so.
    samples, rate = read_audio(sample_flacs[0])
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(samples, int(8 * rate / len(samples)) + 1)[: 8 * rate], rate, format="WAV",
                    subtype="PCM_16")
    body = buffer.getvalue()

    def send(url):
        request = urllib.request.Request(url + "/transcribe", data=body, headers={"Content-Type": "audio/wav"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, json.loads(response.read()), None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()), err.headers.get("Retry-After")

    with served(untrained_checkpoint, "--max-queue", "2", "--max-batch", "1") as url:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, [url] * 12))
        health = json.loads(urllib.request.urlopen(url + "/health").read())
        after = send(url)  # the server goes on
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    for status, answer, retry_after in answers:
        if status == 503:
            assert "busy" in answer["error"] and int(retry_after) >= 1
        else:
            assert answer["duration"] == pytest.approx(8.0, abs=1e-3)
    assert health["refused"] == statuses.count(503) and health["max_queue"] == 2
    assert health["streaming"] is False  # a bidirectional model: the page offers no "Live"
    assert health["utterances"] == statuses.count(200) and after[0] == 200


def test_the_ctc_alignment_is_the_best_path_that_reads_the_labels():
    rng = np.random.default_rng(0)
    blank, classes, frames = 2, 3, 7  # labels 0 and 1, blank 2: every path can be tried
    for labels in ([0], [0, 1], [1, 1], [0, 1, 0]):
        log_probs = np.log(rng.dirichlet(np.ones(classes), size=frames))
        best, best_path = -np.inf, None
        for path in np.ndindex(*([classes] * frames)):
            collapsed = [k for t, k in enumerate(path) if k != blank and (t == 0 or k != path[t - 1])]
            score = log_probs[np.arange(frames), list(path)].sum()
            if collapsed == labels and score > best:
                best, best_path = score, path
        first, last = ctc_align(log_probs, labels, blank=blank)
        spans, label = [], -1  # the label number each frame of the best path emits
        for t, k in enumerate(best_path):
            if k != blank:
                label += t == 0 or k != best_path[t - 1] or best_path[t - 1] == blank
                spans.append((label, t))
        assert list(first) == [min(t for i, t in spans if i == n) for n in range(len(labels))], labels
        assert list(last) == [max(t for i, t in spans if i == n) for n in range(len(labels))], labels
    with pytest.raises(ValueError, match="do not fit"):
        ctc_align(np.zeros((2, 3)), [1, 1], blank=2)


def test_word_times_are_the_aligned_frames_times_the_frame_length():
    labels = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ _"
    path = "__AB_ _CC__"  # frames: A at 2, B at 3, space at 5, C at 7-8
    log_probs = np.full((len(path), len(labels)), -20.0)
    for t, c in enumerate(path):
        log_probs[t, labels.index(c)] = 0.0
    words = word_times("AB C", log_probs, 0.04)
    assert [(w.word, w.start, w.end) for w in words] == [("AB", 0.08, 0.16), ("C", 0.28, 0.36)]
    assert padded_frames(100) == 128 and padded_frames(4097) == 8192


@pytest.mark.parametrize("frames, budget, expected", [
    ([500] * 8, 4096, [[0, 1, 2, 3, 4, 5, 6, 7]]),  # 8 rows of 512: one pass
    ([600] * 8, 4096, [[0, 1, 2, 3], [4, 5, 6, 7]]),  # 8 rows of 1024 would be 8192: two of 4 rows
    ([6000, 100, 300], 4096, [[1, 2], [0]]),  # shortest first; one past the budget alone
    ([100, 5000, 120, 4000], 4096, [[0, 2], [3], [1]]),
    ([300] * 3, 4096, [[0, 1, 2]]),  # 3 utterances pad to 4 rows: 4 x 512
])
def test_forward_slices_hold_a_batch_to_the_budget_of_padded_frames(frames, budget, expected):
    slices = forward_slices(frames, budget)
    assert slices == expected
    assert sorted(i for s in slices for i in s) == list(range(len(frames)))  # each utterance once
    for positions in slices:  # within the budget, unless alone
        longest = max(frames[i] for i in positions)
        assert len(positions) == 1 or padded_rows(len(positions)) * padded_frames(longest) <= budget


def test_the_forward_thread_runs_a_waiting_tick_before_uploads_that_came_first():
    # One call holds the thread; three uploads, then a tick, then another upload wait for it. When
    # it ends the tick goes first, then the uploads in the order they came; one cancelled while
    # waiting is skipped; every call ran in the same one thread.
    import asyncio
    import threading

    forward, ran, threads = ForwardThread(), [], set()
    release = threading.Event()

    def call(name):
        threads.add(threading.get_ident())
        if name == "holder":
            release.wait(10)
        ran.append(name)
        return name

    async def scenario():
        holder = asyncio.ensure_future(forward.run(UPLOAD, call, "holder"))
        await asyncio.sleep(0.05)  # the holder is in the thread
        waiting = [asyncio.ensure_future(forward.run(UPLOAD, call, f"upload {i}")) for i in range(3)]
        waiting.append(asyncio.ensure_future(forward.run(TICK, call, "tick")))
        waiting.append(asyncio.ensure_future(forward.run(UPLOAD, call, "upload 3")))
        await asyncio.sleep(0.01)  # all of them wait
        waiting[1].cancel()
        release.set()
        return await asyncio.gather(holder, *waiting, return_exceptions=True)

    results = asyncio.run(scenario())
    forward.shutdown()
    assert ran == ["holder", "tick", "upload 0", "upload 2", "upload 3"]
    assert results[0] == "holder" and isinstance(results[2], asyncio.CancelledError) and len(threads) == 1
