"""The seed notebook's pipeline as written, in Keras 3 on the torch backend.

Optional (``pip install -e '.[bench]'``); only ``benchmarks/seed_vs_cadenza.py --notebook
keras`` imports it. The functions below are the notebook's own (../shared/seed/), names and
all, with only what Keras 3 requires changed:

* ``keras.utils.np_utils.to_categorical`` is ``keras.utils.to_categorical`` in Keras 3;
* ``input_shape=`` on the first layer becomes an ``Input`` layer (same model, no warning);
* the per-epoch ``ModelCheckpoint`` (weights.hdf5) is left out of the timed steps: it runs
  once per epoch, thousands of steps apart in the notebook's 200-epoch training;
* ``generate_notes`` takes the start index and the number of notes as arguments (the
  notebook draws the start at random and makes 500), so both sides start from one primer.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy  # noqa: E402

globalSequence = 100  # sequence length we will be considering


def load_keras():
    """keras on the torch backend, or a one-line reason why not (RuntimeError)."""
    try:
        import keras
    except ImportError as exc:
        raise RuntimeError(f"--notebook keras needs Keras 3: pip install -e '.[bench]' ({exc})") from None
    if not keras.__version__.startswith("3.") or keras.backend.backend() != "torch":
        raise RuntimeError(f"--notebook keras needs Keras 3 on the torch backend (KERAS_BACKEND=torch); "
                           f"found keras {keras.__version__} on {keras.backend.backend()}")
    return keras


def prepare_sequences(notes, numClasses):
    """The notebook's training ``prepare_sequences``."""
    keras = load_keras()
    length = globalSequence
    noteOctavePairs = sorted(set(item for item in notes))
    note_integer_function = dict((note, number) for number, note in enumerate(noteOctavePairs))
    predictors = []
    responses = []
    for i in range(0, len(notes) - length, 1):
        sequence_in = notes[i:i + length]
        sequence_out = notes[i + length]
        predictors.append([note_integer_function[char] for char in sequence_in])
        responses.append(note_integer_function[sequence_out])
    n_patterns = len(predictors)
    predictors = numpy.reshape(predictors, (n_patterns, length, 1))
    predictors = predictors / float(numClasses)
    responses = keras.utils.to_categorical(responses, numClasses)
    return (predictors, responses)


def prepare_generation_sequences(notes, pitchnames, numClasses):
    """The notebook's generation ``prepare_sequences``: integer windows (lists) and their
    normalised array."""
    note_integer_function = dict((note, number) for number, note in enumerate(pitchnames))
    length = globalSequence
    predictors = []
    for i in range(0, len(notes) - length, 1):
        input = notes[i:i + length]
        predictors.append([note_integer_function[element] for element in input])
    n_patterns = len(predictors)
    normalized_predictors = numpy.reshape(predictors, (n_patterns, length, 1)) / float(numClasses)
    return (predictors, normalized_predictors)


def create_network(predictors, num_class_labels):
    """The notebook's ``create_network``."""
    keras = load_keras()
    from keras.layers import LSTM, Activation, Dense, Dropout, Input
    from keras.layers import BatchNormalization as BatchNorm

    dropoutRate = 0.3
    LSTM_nodes = 512
    Dense_nodes = 256
    network = keras.Sequential()
    network.add(Input(shape=(predictors.shape[1], predictors.shape[2])))
    network.add(LSTM(512, recurrent_dropout=dropoutRate, return_sequences=True))
    network.add(LSTM(LSTM_nodes, return_sequences=True, recurrent_dropout=dropoutRate))
    network.add(LSTM(LSTM_nodes))
    network.add(BatchNorm())
    network.add(Dropout(dropoutRate))
    network.add(Dense(Dense_nodes))
    network.add(Activation('relu'))
    network.add(BatchNorm())
    network.add(Dropout(dropoutRate))
    network.add(Dense(num_class_labels))
    network.add(Activation('softmax'))
    network.compile(loss='categorical_crossentropy', optimizer='rmsprop')
    return network


def generate_notes(network, network_input, pitchnames, numClasses, start, n=500):
    """The notebook's ``generate_notes`` from window ``start``, ``n`` notes."""
    note_integer_function = dict((number, note) for number, note in enumerate(pitchnames))
    pattern = list(network_input[start])
    prediction_output = []
    for note_index in range(n):
        prediction_input = numpy.reshape(pattern, (1, len(pattern), 1))
        prediction_input = prediction_input / float(numClasses)
        prediction = network.predict(prediction_input, verbose=0)
        index = numpy.argmax(prediction)
        result = note_integer_function[index]
        prediction_output.append(result)
        pattern.append(index)
        pattern = pattern[1:len(pattern)]
    return prediction_output


class Notebook:
    """The notebook's network built on ``notes`` (its token strings, in order), ready to
    train a few steps at a time and to generate."""

    def __init__(self, notes: list[str], seed: int = 0):
        keras = load_keras()
        keras.utils.set_random_seed(seed)
        self.numClasses = len(set(notes))
        self.pitchnames = sorted(set(notes))
        self.predictors, self.responses = prepare_sequences(notes, self.numClasses)
        self.network = create_network(self.predictors, self.numClasses)
        self.network_input, _ = prepare_generation_sequences(notes, self.pitchnames, self.numClasses)
        self.offset = 0
        self.params = int(sum(numpy.prod(w.shape) for w in self.network.trainable_weights))

    def train_steps(self, steps: int, batch_size: int = 128) -> float:
        """``network.fit`` as the notebook calls it, on the next ``steps`` batches of windows
        (one epoch of them); returns the mean training loss."""
        n = steps * batch_size
        if self.offset + n > len(self.predictors):
            self.offset = 0
        x = self.predictors[self.offset:self.offset + n]
        y = self.responses[self.offset:self.offset + n]
        self.offset += n
        history = self.network.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
        return float(history.history["loss"][-1])

    def generate(self, n: int, start: int = 0) -> list[str]:
        return generate_notes(self.network, self.network_input, self.pitchnames, self.numClasses, start, n)
