"""Small models composed from the library's objects, for the tests."""

import fcntl
import os

import keras

import tfode

DECODERS = ("trajectory", "odernn", "gru")


def small_model(vocab_size, decoder="trajectory", units=32, embedding_dim=16, max_length=8,
                solver=None, vector_field=None, tied_embeddings=False, encoder=None, seed=None,
                build=True, path_energy=None, **decoder_options):
    """`Seq2SeqODE(GRUEncoder(...), <decoder>(...))` of width `units`; the ODE decoders default to
    RK4 with 2 steps per token and a `VectorField` of width `units`."""
    encoder = tfode.GRUEncoder(vocab_size, units, embedding_dim=embedding_dim, seed=seed, **(encoder or {}))
    if decoder == "gru":
        made = tfode.GRUDecoder(vocab_size, units, embedding_dim=embedding_dim, seed=seed, **decoder_options)
    else:
        flow = dict(vector_field=vector_field or tfode.VectorField(units, dtype="float32"),
                    solver=solver or tfode.RK4(steps_per_unit=2), seed=seed)
        if decoder == "trajectory":
            made = tfode.TrajectoryDecoder(vocab_size, units, **flow, **decoder_options)
        else:
            made = tfode.ODERNNDecoder(vocab_size, units, embedding_dim=embedding_dim, **flow, **decoder_options)
    model = tfode.Seq2SeqODE(encoder, made, max_length=max_length, tied_embeddings=tied_embeddings,
                             path_energy=path_energy)
    if build:
        model.build((None, None))
    return model


def fit_until_reconstructed(model, tokens, max_rounds=12, epochs_per_round=25, learning_rate=3e-3):
    """Fits on `tokens` until greedy decoding reconstructs every one (at most
    `max_rounds × epochs_per_round` epochs); returns the last `Decoded`."""
    import numpy as np

    from tfode.tokens import append_eos

    if not model.compiled:
        model.compile(keras.optimizers.Adam(learning_rate, clipnorm=1.0))
    targets = append_eos(tokens).numpy()
    for _ in range(max_rounds):
        model.fit(tokens, targets, epochs=epochs_per_round, batch_size=8, verbose=0)
        decoded = model.reconstruct(tokens)
        if np.array_equal(decoded.ids.numpy(), targets):
            break
    return decoded


def backed_up_epoch(backup_dir) -> int:
    """The epoch of the latest training backup in `backup_dir`; 0 while there is none (or the
    folder is removed as it is read, when the run ends)."""
    from training.callbacks import TrainingBackup

    try:
        backups = TrainingBackup.backups(str(backup_dir))
    except FileNotFoundError:
        return 0
    return backups[0]["epoch"] if backups else 0


def once_per_run(tmp_path_factory, name, make, suffix=""):
    """The path `name` (a file or a folder) that `make(path)` writes, made once per test run
    rather than once per xdist worker: the first worker to ask makes it in the folder the run's
    workers share, the others wait for it (a file lock). The run's own folder without xdist.
    `make` writes a temporary beside it (ending in `suffix`), renamed when whole (`tfode.atomic`)."""
    from tfode import atomic

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # one folder per run
    path = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not path.exists():
            with atomic.replacing(str(path), suffix=suffix) as temporary:
                make(temporary)
    return path


def model_once_per_run(tmp_path_factory, name, build):
    """The Keras model `build()` returns, built and saved once per test run (`once_per_run`); every
    worker, the one that built it included, gets it loaded from the saved file."""
    path = once_per_run(tmp_path_factory, f"{name}.keras", lambda temporary: build().save(temporary), suffix=".keras")
    return keras.models.load_model(str(path))
