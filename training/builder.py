"""A run's configuration → model objects: the one place where flags become layers.

    config = presets.resolve(preset, flags)        # values only (training/presets.py)
    check(config, given)                           # refuses what does not apply, before any file
    model = build_model(config, vocab_size)        # Seq2SeqODE(encoder=..., decoder=...)

`FLAGS` describes every setting a run's configuration holds: its help, and when it applies. The
command-line parser of `training.train` is made from it, each flag's help ending in its default
(`presets.DEFAULTS`, the one table of defaults). Nothing here imports TensorFlow until a model is
built, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
from typing import Callable, NamedTuple

from . import presets

DECODERS = ("trajectory", "odernn", "gru")
AUTOREGRESSIVE = ("odernn", "gru")


def _ode(config):
    return None if config["decoder"] != "gru" else "the gru decoder has no ODE"


def _solver_option(name):
    """Whether the setting `name` applies: the configured solver takes it (`options`)."""
    def applies(config):
        from tfode import solvers

        solver = solvers.SOLVERS.get(config["solver"])
        if _ode(config) or solver is None or name in solver.options:
            return _ode(config)
        return f"the {config['solver']} solver takes {', '.join(solver.options)}, not {name}"
    return applies


def _mlp_field(config):
    return _ode(config) or (None if config["field_type"] == "mlp"
                            else "the gated field's width is the state's and it has no layers to set")


def _trajectory(config):
    return None if config["decoder"] == "trajectory" else f"it applies to the trajectory decoder only"


def _autoregressive(config):
    return (None if config["decoder"] in AUTOREGRESSIVE
            else "the trajectory decoder reads no previous words")


def _input_noise(config):
    # Turning the fade off applies to any run: a command may say so against a preset that fades.
    return (None if config["input_noise"] or config["input_blank"] or not config["input_noise_fade"]
            else "there is no input deletion or blanking to fade (add --input-noise or --input-blank)")


def _input_blank(config):
    return None if config["input_blank"] else "there is no input blanking (add --input-blank)"


def _path_energy(config):
    return (None if config["path_energy"] or config["path_words"]
            else "there is no path term (add --path-energy WEIGHT or --path-words WEIGHT)")


def _path_change(config):
    return None if config["path_energy"] else "there is no path energy (add --path-energy WEIGHT)"


def _cosine(config):
    return None if config["lr_schedule"] == "cosine" else "the plateau schedule has no warm-up"


def _variational(config):
    return None if config["variational"] else "the latent is not variational (add --variational)"


def _synthetic(config):
    return None if config["data"] == "synthetic" else "the data is not the built-in grammar"


def _mirrored(config):
    return None if config["distribute"] == "mirrored" else "logical devices serve --distribute mirrored"


class Flag(NamedTuple):
    """One setting: its help, its type (bool: a --x/--no-x pair), its choices, and `applies`,
    which returns why it does not apply to a configuration (None when it does)."""

    help: str
    type: type = float
    choices: tuple | None = None
    applies: Callable[[dict], str | None] | None = None


FLAGS = {
    "data": Flag("'synthetic' (the built-in grammar), 'tatoeba' (download once, or $TFODE_TATOEBA), "
                 "or a file: an Anki/Tatoeba .zip or .txt pair file, or plain text", str),
    "decoder": Flag("decoder", str, DECODERS),
    "epochs": Flag("the most epochs to run", int),
    "time_budget": Flag("stop after this many seconds of training (0: none)"),
    "units": Flag("hidden width (encoder, ODE state, decoder GRUs)", int),
    "embedding_dim": Flag("token embedding size", int),
    "bidirectional": Flag("bidirectional encoder", bool),
    "tied_embeddings": Flag("score tokens against the encoder's embeddings (tied readout)", bool),
    "variational": Flag("variational latent (reparameterised h(0), KL to N(0, I))", bool),
    "kl_weight": Flag("final KL weight (annealed linearly over the first epoch)", applies=_variational),
    "free_bits": Flag("nats of KL per latent dimension that cost nothing (variational)", applies=_variational),
    "mmd_weight": Flag("weight of the MMD between the batch's h(0) and samples of N(0, I) (WAE-MMD)"),
    "path_energy": Flag("weight of the path energy: the squared Jensen-Shannon change of the decoded "
                        "words over one eighth of a path between two codes of the batch (0: none)"),
    "path_words": Flag("weight of −log(p(a_k) + p(b_k)) at a point of a path between two codes of the "
                       "batch: each position holds one of the two sentences' words (0: none)"),
    "path_temperature": Flag("temperature of the word distributions whose change the path energy "
                             "measures (below 1: sharper, so only words that turn over count)",
                             applies=_path_change),
    "path_energy_rows": Flag("rows of each batch whose paths the path terms score", int,
                             applies=_path_energy),
    "input_noise": Flag("probability of deleting each input word of the encoder in training "
                        "(a denoising autoencoder)"),
    "input_blank": Flag("probability of blanking out each input word of the encoder in training"),
    "input_blank_token": Flag("what a blanked input word becomes: 'mask', a learned vector of the "
                              "encoder's own, or 'unk', the <unk> that real unknown words share", str,
                              ("mask", "unk"), _input_blank),
    "input_shuffle": Flag("farthest an input word of the encoder moves in training's local shuffle", int),
    "input_noise_fade": Flag("share of training, at its end, over which the input deletion and "
                             "blanking fade linearly to none (0: constant)", applies=_input_noise),
    "solver": Flag("ODE solver for training, a name of tfode.solvers.SOLVERS (the decoder must be able to "
                   "train with it)", str, applies=_ode),
    "steps_per_unit": Flag("fixed-grid solver steps per unit of time (per token at Δt 1)",
                           applies=_solver_option("steps_per_unit")),
    "rtol": Flag("adaptive solver relative tolerance", applies=_solver_option("rtol")),
    "atol": Flag("adaptive solver absolute tolerance", applies=_solver_option("atol")),
    "field_type": Flag("vector field: time-conditioned MLP or GRU-ODE", str, ("mlp", "gated"), _ode),
    "field_units": Flag("MLP vector field hidden width", int, applies=_mlp_field),
    "field_depth": Flag("MLP vector field hidden layers", int, applies=_mlp_field),
    "layer_norm": Flag("layer normalisation inside the MLP vector field", bool, applies=_mlp_field),
    "time_span": Flag("time between two tokens (Δt)"),
    "kinetic_energy": Flag("weight of the kinetic-energy regulariser of the flow", applies=_ode),
    "jacobian_norm": Flag("weight of the Jacobian-norm regulariser of the flow", applies=_ode),
    "augment_dim": Flag("zeros appended to the trajectory decoder's state", int, applies=_trajectory),
    "midpoint_weight": Flag("weight of the trajectory decoder's midpoint term: −log(p_k + p_k+1) "
                            "halfway between tokens k and k+1", applies=_trajectory),
    "word_dropout": Flag("fraction of the autoregressive decoder's input words replaced by <unk>",
                         applies=_autoregressive),
    "scheduled_sampling": Flag("final probability of feeding an autoregressive decoder its own "
                               "previous token in training (ramped up from 0 over the run)",
                               applies=_autoregressive),
    "dropout": Flag("dropout on token embeddings and on the states read out (training only)"),
    "label_smoothing": Flag("share ε of each target spread over the vocabulary in the loss"),
    "lr_schedule": Flag("learning-rate schedule", str, ("plateau", "cosine")),
    "warmup_steps": Flag("linear learning-rate warm-up (cosine schedule)", int, applies=_cosine),
    "learning_rate": Flag("Adam learning rate"),
    "clipnorm": Flag("gradient norm clipping"),
    "batch_size": Flag("sentences per batch", int),
    "max_length": Flag("the most tokens a sentence keeps (longer ones are cut and counted)", int),
    "min_words": Flag("shortest sentence kept, in words", int),
    "max_words": Flag("longest sentence kept, in words", int),
    "vocab_size": Flag("largest vocabulary, reserved tokens included", int),
    "min_count": Flag("fewest occurrences for a token to enter the vocabulary", int),
    "synthetic_size": Flag("sentences drawn from the built-in grammar", int, applies=_synthetic),
    "max_nfe": Flag("stop when the ODE solver needs more evaluations per step", applies=_ode),
    "patience": Flag("early stopping patience in epochs", int),
    "seed": Flag("seed of every random stream: initial weights, dropout, sampling, shuffling, "
                 "the built-in grammar", int),
    "deterministic": Flag("bit-identical runs for a seed on CPU: op determinism, one thread, no "
                          "oneDNN custom ops, no arithmetic graph rewrites (several times slower "
                          "per step)", bool),
    "mixed_precision": Flag("mixed_float16 for the encoder and GRUs (the ODE stays float32); for GPUs", bool),
    "distribute": Flag("tf.distribute strategy: mirrored (this machine's devices) or multiworker "
                       "(MultiWorkerMirroredStrategy over the cluster in TF_CONFIG); --batch-size is per "
                       "replica", str, ("none", "mirrored", "multiworker")),
    "logical_cpus": Flag("split the CPU into N logical devices (to try 'mirrored' on a CPU)", int,
                         applies=_mirrored),
}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds one `--flag` per `FLAGS` entry; each defaults to None (unset), and its help ends in
    the value `presets.DEFAULTS` gives it."""
    for name, flag in FLAGS.items():
        option = "--" + name.replace("_", "-")
        default = presets.DEFAULTS[name]
        help_text = f"{flag.help} (default: {'none' if default is None else default})"
        if flag.type is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(option, type=flag.type, choices=flag.choices, default=None,
                                metavar=None if flag.choices else name.upper(), help=help_text)


def check(config: dict, given: set[str] = frozenset()) -> None:
    """Raises ValueError, naming the flag, for a flag in `given` (set on the command line) that does
    not apply to `config`, and for any value out of range (`check_flags`, then `check_objects`)."""
    check_flags(config, given)
    check_objects(config)


def check_flags(config: dict, given: set[str] = frozenset()) -> None:
    """The checks that need no TensorFlow: flags that do not apply, values out of range."""
    for name in sorted(given):
        reason = FLAGS[name].applies(config) if FLAGS[name].applies else None
        if reason:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} does not apply here: {reason}.")
    if config["epochs"] < 1:
        raise ValueError("--epochs must be at least 1.")
    if config["time_budget"] is not None and config["time_budget"] < 0:
        raise ValueError("--time-budget must be positive (or 0: none).")
    if config["distribute"] == "multiworker" and config["time_budget"]:
        raise ValueError(
            "--distribute multiworker trains for --epochs: a time budget would be read on each "
            "worker's own clock, and workers that stop at different steps wait for each other for "
            "ever. Pass --time-budget 0 (a preset may set one) and choose --epochs.")
    if not 1 <= config["min_words"] <= config["max_words"]:
        raise ValueError("Need 1 <= --min-words <= --max-words.")
    for name in ("batch_size", "max_length", "min_count", "synthetic_size", "patience"):
        if config[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
    if config["vocab_size"] <= 4:
        raise ValueError("--vocab-size must exceed the 4 reserved tokens.")
    if not 0.0 <= config["input_noise_fade"] <= 1.0:
        raise ValueError("--input-noise-fade must be in [0, 1].")
    if config["warmup_steps"] < 0:
        raise ValueError("--warmup-steps must be at least 0.")
    if not config["learning_rate"] > 0 or not config["clipnorm"] > 0:
        raise ValueError("--learning-rate and --clipnorm must be positive.")
    if config["logical_cpus"] < 0:
        raise ValueError("--logical-cpus must be at least 0.")


def check_objects(config: dict) -> None:
    """Builds the model's objects with a stand-in vocabulary, so that every layer validates its
    own arguments, and asks the decoder whether it can train with the solver, before any file is
    written."""
    model = build_model(config, vocab_size=max(5, min(config["vocab_size"], 64)))
    refusal = type(model.decoder).training_refusal(model.decoder.solver)
    if refusal:
        raise ValueError(refusal)
    build_loss(config)


def build_solver(config: dict):
    """The solver value of a configuration (`tfode.solvers.from_options`)."""
    from tfode import solvers

    return solvers.from_options(config["solver"], config)


def build_vector_field(config: dict):
    """The vector field layer (float32 whatever the dtype policy: the flow stays float32)."""
    from tfode import fields

    if config["field_type"] == "gated":
        return fields.GatedVectorField(dtype="float32", name="vector_field")
    return fields.VectorField(hidden_units=config["field_units"], depth=config["field_depth"],
                              layer_norm=config["layer_norm"], dtype="float32", name="vector_field")


def build_decoder(config: dict, vocab_size: int):
    from tfode import decoders

    common = dict(vocab_size=vocab_size, units=config["units"], time_span=config["time_span"],
                  dropout=config["dropout"], seed=config["seed"], name="decoder")
    flow = dict(vector_field=build_vector_field(config), solver=build_solver(config),
                kinetic_energy=config["kinetic_energy"], jacobian_norm=config["jacobian_norm"])
    words = dict(embedding_dim=config["embedding_dim"], word_dropout=config["word_dropout"],
                 scheduled_sampling=config["scheduled_sampling"])
    if config["decoder"] == "trajectory":
        return decoders.TrajectoryDecoder(**common, **flow, augment_dim=config["augment_dim"],
                                          midpoint_weight=config["midpoint_weight"])
    if config["decoder"] == "odernn":
        return decoders.ODERNNDecoder(**common, **flow, **words)
    if config["decoder"] == "gru":
        return decoders.GRUDecoder(**common, **words)
    raise ValueError(f"Unknown decoder {config['decoder']!r}; expected one of {DECODERS}.")


def build_model(config: dict, vocab_size: int):
    """`Seq2SeqODE(encoder=GRUEncoder(...), decoder=...)` as the configuration asks, unbuilt."""
    from tfode.encoder import GRUEncoder
    from tfode.model import Seq2SeqODE
    from tfode.noise import TokenNoise
    from tfode.path_energy import PathEnergy

    noise = None
    if config["input_noise"] or config["input_blank"] or config["input_shuffle"]:
        noise = TokenNoise(delete=config["input_noise"], blank=config["input_blank"],
                           blank_token=config["input_blank_token"], shuffle_distance=config["input_shuffle"],
                           fades=bool(config["input_noise_fade"] and (config["input_noise"] or config["input_blank"])),
                           seed=config["seed"], name="input_noise")
    encoder = GRUEncoder(vocab_size, config["units"], embedding_dim=config["embedding_dim"],
                         bidirectional=config["bidirectional"], variational=config["variational"],
                         kl_weight=config["kl_weight"], dropout=config["dropout"], seed=config["seed"],
                         input_noise=noise, free_bits=config["free_bits"], mmd_weight=config["mmd_weight"],
                         name="encoder")
    path_energy = None
    if config["path_energy"] or config["path_words"]:
        path_energy = PathEnergy(config["path_energy"], rows=config["path_energy_rows"], seed=config["seed"],
                                 words_weight=config["path_words"], temperature=config["path_temperature"],
                                 name="path_energy")
    return Seq2SeqODE(encoder, build_decoder(config, vocab_size), max_length=config["max_length"],
                      tied_embeddings=config["tied_embeddings"], path_energy=path_energy)


def build_loss(config: dict):
    from tfode.losses import MaskedCrossEntropy

    return MaskedCrossEntropy(label_smoothing=config["label_smoothing"])


def inference_solver(name: str, **settings):
    """The solver value `training.export --solver …` asks for (BDF included: inference only);
    `rtol`, `atol`, `steps_per_unit` default to `presets.DEFAULTS`."""
    keys = ("rtol", "atol", "steps_per_unit")
    return build_solver({"solver": name, **{key: presets.DEFAULTS[key] for key in keys}, **settings})
