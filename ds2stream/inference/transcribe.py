"""Audio files -> text, from a ds2stream checkpoint or an exported MindIR file, through the same
features and the same decoders as ``ds2stream eval`` (``evaluate.network_log_probs``,
``decoding.make_decoder``). An exported model's sidecar may carry its decoder settings."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..checkpoint import check_meta, load_model
from ..data.audio import read_audio, resample
from ..errors import ConfigError, DataError
from ..features import FeatureConfig, spectrogram
from ..model import ModelConfig
from .decoding import DecoderConfig, make_decoder
from .evaluate import network_log_probs
from .hotwords import Hotwords

#: Audio fed to a stream at a time by ``stream_samples`` (``transcribe --stream``): 160 ms.
CHUNK_SECONDS = 0.16
#: The longest chunk a stream is fed: past a few seconds a "stream" is a sequence of uploads, and
#: partial results come too late to be of use.
MAX_CHUNK_MS = 5000


@dataclasses.dataclass
class OpenedModel:
    """A model file opened for inference: the network (built from a checkpoint, or an exported
    MindIR's graph, which carries its ``ModelConfig`` as ``config`` as a built one does), its
    metadata (labels, feature and model configs) and, for an export, the decoder settings its
    sidecar carries and the streaming stages it names."""

    network: object
    meta: dict
    carried_decoder: DecoderConfig | None = None
    exported: tuple | None = None  # (the .mindir, its sidecar's "stream")

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.meta["feature_config"])

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.meta["model_config"])


def open_model(model_path: Path) -> OpenedModel:
    """A ds2stream checkpoint (.ckpt) or an exported MindIR (.mindir, its .json beside it), ready to
    run; a DataError naming the file when it cannot be."""
    import mindspore as ms

    model_path = Path(model_path)
    if model_path.suffix != ".mindir":
        return OpenedModel(*load_model(model_path))
    sidecar = model_path.with_suffix(".json")
    if not sidecar.is_file():
        raise DataError(f"{model_path}: its {sidecar.name} (feature config, labels) is missing")
    carried = None
    try:
        meta = json.loads(sidecar.read_text())
        check_meta(meta, model_path)
        features = FeatureConfig.from_dict(meta["feature_config"])
        model_config = ModelConfig.from_dict(meta["model_config"])
        if meta.get("decoder"):
            carried = DecoderConfig.from_dict(meta["decoder"], sidecar)
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{sidecar}: not a ds2stream model description ({err})") from None
    try:
        network = ms.nn.GraphCell(ms.load(str(model_path)))
    except (ValueError, RuntimeError, OSError) as err:
        raise DataError(f"{model_path}: not a readable MindIR file ({' '.join(str(err).split())[:200]})") \
            from None
    network.config = model_config  # the eval loop reads output lengths from it, as from a built model
    _probe(network, model_path, sidecar, features)
    return OpenedModel(network, meta, carried, (model_path, meta.get("stream")))


def _probe(network, model_path: Path, sidecar: Path, features: FeatureConfig) -> None:
    """Run the MindIR once on silence shaped as the sidecar says: a model exported with another
    feature config fails here, with a message, instead of on the user's first file."""
    try:
        network_log_probs(network, np.zeros((1, 1, features.num_bins, 64), np.float32), np.array([64]))
    except RuntimeError as err:
        raise DataError(f"{model_path} does not take the {features.num_bins}-bin features that {sidecar.name} "
                         f"describes: the two come from different exports "
                         f"({' '.join(str(err).split('C++ Call Stack')[0].split())[:160]})") from None


class Transcriber:
    """Audio files -> text, from a ds2stream checkpoint (.ckpt) or an exported MindIR (.mindir)."""

    def __init__(self, model_path: Path, decoder: DecoderConfig | None = None, hotwords: Hotwords | None = None):
        """``decoder``: how to decode (default: what an exported model's sidecar says, else greedy);
        ``hotwords``: words to favour in every transcript, and the default boost of a request's."""
        opened = open_model(model_path)
        self.network, self.exported = opened.network, opened.exported
        self.features, self.model_config = opened.features, opened.model_config
        self.hotwords = hotwords if hotwords is not None else Hotwords()
        self.decoder = (decoder or opened.carried_decoder or DecoderConfig()).for_hotwords(self.hotwords)
        self.decode = make_decoder(self.decoder, hotwords=self.hotwords)
        self.streaming = None  # built on the first stream: a forward-only model's stages

    @property
    def frame_seconds(self) -> float:
        """Seconds of audio per output frame."""
        return self.model_config.frame_seconds(self.features)

    def features_of(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The spectrogram (num_bins, frames) the network takes, at the model's sample rate."""
        return spectrogram(resample(samples, rate, self.features.sample_rate), self.features)

    def decoder_with(self, hotwords: Hotwords | None):
        """This transcriber's decoder with ``hotwords`` (a request's) added to its own, which they
        override phrase by phrase; a greedy one becomes the beam search (``make_decoder``)."""
        if not hotwords:
            return self.decode
        from .beam import BeamSearch

        merged = self.hotwords.merged(hotwords)
        if isinstance(self.decode, BeamSearch):
            return self.decode.with_hotwords(merged)  # the LM already read
        return make_decoder(self.decoder, hotwords=merged)

    def transcribe_samples(self, samples: np.ndarray, rate: int) -> str:
        """The same features and decoder as ``ds2stream eval``."""
        spect = self.features_of(samples, rate)
        return self.decode(network_log_probs(self.network, spect[None, None], np.array([spect.shape[1]]))[0])

    def transcribe_file(self, path: Path) -> str:
        samples, rate = read_audio(path)
        return self.transcribe_samples(samples, rate)

    def streaming_model(self):
        """The model's stages for streams (built once); a ConfigError for a model that cannot stream."""
        from .stream import StreamingModel

        if self.streaming is None:
            if self.exported is None:
                self.streaming = StreamingModel.from_network(self.network, self.model_config, self.features)
            else:
                self.streaming = self._exported_stages()
        return self.streaming

    def _exported_stages(self):
        """The streaming stages an export wrote beside its MindIR (its sidecar's ``"stream"``)."""
        import mindspore as ms

        from .stream import StreamingModel, check_streamable

        check_streamable(self.model_config, self.features)
        model_path, names = self.exported
        if not names:
            raise ConfigError(f"{model_path} was exported without its streaming stages: export it again")
        folder = model_path.parent
        try:
            convs = [ms.nn.GraphCell(ms.load(str(folder / name))) for name in names["convs"]]
            rnn = ms.nn.GraphCell(ms.load(str(folder / names["rnn"])))
            with np.load(folder / names["head"]) as head:
                weights = dict(head)
        except (ValueError, RuntimeError, OSError, KeyError, TypeError) as err:
            raise DataError(f"{model_path}: its streaming stages cannot be read ({' '.join(str(err).split())[:160]})") \
                from None
        return StreamingModel(convs, rnn, weights, self.model_config, self.features)

    def open_stream(self, hotwords: Hotwords | None = None, endpoint=None):
        """A stream of this model, decoded as it goes by this transcriber's decoder (with
        ``hotwords`` added: :meth:`decoder_with`); ``endpoint``: rules (``endpoint.EndpointRules``)
        that cut it into segments, else one utterance."""
        decode = self.decoder_with(hotwords)
        return self.streaming_model().open(decode.start() if hasattr(decode, "start") else None, endpoint)

    def stream_samples(self, samples: np.ndarray, rate: int, chunk_seconds: float = CHUNK_SECONDS,
                       realtime: bool = False, endpoint=None):
        """Feed ``samples`` chunk by chunk to a forward-only model, at real time or as fast as it
        goes; yields ``{"partial": text, "at": seconds of audio}`` each time the text so far changes,
        with ``endpoint`` rules each segment as it ends (``Segment.to_dict``), then
        :meth:`stream_result`: this transcriber's decoder over all the log-probabilities (decoded
        as they came), which equal the whole recording's."""
        import time

        samples = resample(samples, rate, self.features.sample_rate)
        step = max(1, int(round(chunk_seconds * self.features.sample_rate)))
        stream, shown, started = self.open_stream(endpoint=endpoint), "", time.perf_counter()
        for at in range(0, len(samples), step):
            if realtime:  # this chunk has been "spoken" once the clock passes its end
                time.sleep(max(0.0, started + (at + step) / self.features.sample_rate - time.perf_counter()))
            told = len(stream.segments)
            stream.push(samples[at: at + step])
            yield from (segment.to_dict() for segment in stream.segments[told:])
            if stream.partial != shown:
                shown = stream.partial
                yield {"partial": shown, "at": round(min(at + step, len(samples)) / self.features.sample_rate, 3)}
        audio_end, told = time.perf_counter(), len(stream.segments)
        stream.end()
        yield from (segment.to_dict() for segment in stream.segments[told:])
        yield self.stream_result(stream, len(samples), audio_end)

    def stream_result(self, stream, samples: int, audio_end: float) -> dict:
        """The final message of an ended stream of ``samples`` samples: its text, word times,
        duration, and the seconds since ``audio_end`` (``time.perf_counter()`` at the end of its
        audio); with endpoint rules, its segments too (their texts make its text)."""
        import time

        from .align import timed_words

        duration = round(samples / self.features.sample_rate, 3)
        latency = round(time.perf_counter() - audio_end, 3)
        if stream.endpoints is None:
            return {"text": stream.text, "words": timed_words(stream.text, stream.log_probs, self.frame_seconds,
                                                              duration), "duration": duration, "latency": latency}
        return {"text": stream.text, "words": [word for segment in stream.segments for word in segment.words],
                "duration": duration, "latency": latency,
                "segments": [segment.summary() for segment in stream.segments]}
