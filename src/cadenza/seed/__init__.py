"""The seed notebook, reproduced: the notebook cadenza began as, kept to compare with it.

Only the ``seed`` preset and ``--representation seed`` reach this folder, through the
registries in :mod:`cadenza.data.representations` and :mod:`cadenza.models`:

    representation.py   the notebook's tokens (pitch names and chord strings)
    music21_replica.py  what its music21 loop reads from a MIDI file, from symusic arrays
    measures.py         where music21 puts a track's notes: measures, voices, ties
    midi_parts.py       the parts music21's MIDI import makes of a file's bytes
    model.py            the notebook's Keras network in PyTorch
"""
