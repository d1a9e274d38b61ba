"""Named training configurations.

A run's configuration is DEFAULTS, then the preset, then the preset's settings for the run's
decoder (its "decoders" entry), then the flags.
"""

from __future__ import annotations

DEFAULTS = dict(
    data="synthetic",
    decoder="trajectory",
    units=256,
    embedding_dim=128,
    solver="rk4",
    steps_per_unit=2.0,
    rtol=1e-3,
    atol=1e-4,
    field_type="mlp",
    field_units=256,
    field_depth=2,
    field_activation="tanh",
    layer_norm=False,
    time_span=1.0,
    augment_dim=0,
    bidirectional=False,
    variational=False,
    kl_weight=0.0,
    kinetic_energy=0.0,
    jacobian_norm=0.0,
    tied_embeddings=False,
    word_dropout=0.0,
    dropout=0.0,
    label_smoothing=0.0,
    scheduled_sampling=0.0,
    context_input=False,
    midpoint_weight=0.0,
    lr_schedule="plateau",
    warmup_steps=0,
    max_length=20,
    min_words=5,
    max_words=14,
    vocab_size=20000,
    min_count=1,
    synthetic_size=6000,
    batch_size=128,
    learning_rate=2e-3,
    clipnorm=1.0,
    epochs=30,
    time_budget=None,
    patience=5,
    max_nfe=2000,
    seed=0,
    mixed_precision=False,
    distribute="none",
    logical_cpus=0,
)

PRESETS = {
    # The README's main job: the built-in grammar, small enough for a laptop CPU. The learning
    # rate decays on a cosine over the 12 epochs: at a constant 0.002 the last epochs' validation
    # accuracy fell from 57.1 to 46.5 % in one run; with the decay one run rose over its last
    # epochs to 53.6 % (51.8 % free-running on the test split).
    "synthetic": dict(
        data="synthetic", units=128, field_units=128, embedding_dim=64, epochs=12,
        lr_schedule="cosine", warmup_steps=20,
    ),
    # Minimal settings for tests and smoke runs.
    "tiny": dict(
        units=32, field_units=32, embedding_dim=16, synthetic_size=300, batch_size=32, epochs=2,
        vocab_size=500,
    ),
    # Real text on a 2-core CPU (docs/results.md). Settings tried with 4–8-minute `training.train`
    # runs, compared on validation token accuracy at equal steps:
    # - the gated (GRU-ODE) field: 39.6 % after epoch 0 where the MLP field had 27.6 % (trajectory);
    # - the tied readout: 56.8 / 79.8 % after epochs 0 / 1 where the untied one had 47.1 / 73.1 %,
    #   at 368 instead of 431 ms per step in epoch 0 (ODE-RNN); with the bidirectional encoder
    #   on top 64.0 / 82.2 % at 404 ms (ODE-RNN). For the trajectory decoder one epoch did not show it:
    #   30.4 % tied + bidirectional, 31.7 % bidirectional alone, 39.6 % neither, though its
    #   training accuracy over the epoch was higher (35.4 / 31.7 / 26.7 %).
    # One RK4 step per token; the learning rate decays on a cosine to the end of the time budget.
    # Dropout 0.1 (embeddings and read-out states), trajectory decoder, 600 s: 87.4 % free-running
    # token accuracy on 1000 test sentences (1395 steps) where none gave 83.8 % (1227 steps; the
    # machine ran that one slower); after the same 942 steps 67.8 against 67.0 % validation accuracy.
    # The ODE-RNN folds a token in at every step, so its flow only bridges one token interval:
    # one Euler step of the gated field there is a GRU-shaped update, at a quarter of RK4's cost.
    # Its kinetic-energy regulariser (λ 0.1), 300 s: 70.2 % free-running token accuracy and 76.0 %
    # midpoint consistency on 1000 test sentences (700 steps) where none gave 62.9 % and 51.9 %
    # (751 steps); after the same 471 steps 56.8 against 50.2 % validation accuracy. On the
    # trajectory decoder (600 s) it cost accuracy: 82.1 against 83.8 %, 66.0 against 67.0 % after
    # 942 steps, for midpoint consistency 82.1 against 74.8 %; not used there.
    # Scheduled sampling ramped to 0.5 (autoregressive decoders), ODE-RNN, 600 s, validation
    # split, free-running: 79.4 % token accuracy against 80.8 % without (1417 against 1526 steps),
    # teacher-forced 84.7 against 88.9 %: the gap between the two shrank from 8.0 to 5.3 points,
    # but in 10 minutes the cost to learning outweighed it. In the 30-minute benchmark, where
    # teacher-forced accuracy flattens by two thirds of the run, it paid: ODE-RNN 93.5 → 94.4 %
    # greedy on the test split at about the same steps (4154 / 4203), teacher-forced unchanged
    # (97.1 / 97.2 %); GRU 92.6 → 94.3 % (4181 / 4721 steps).
    # Dropout 0.2 instead of 0.1, ODE-RNN, 1800 s: 94.37 % greedy on the test split (3762 steps;
    # teacher-forced 96.75 %) against session 5's benchmark's 94.42 % (4203 steps; 97.2 %); not adopted.
    # The trajectory decoder's midpoint term (`--midpoint-weight 1`), 1800 s: midpoint
    # consistency 97.9 % but greedy token accuracy 87.1 %, exact match 53.1 % (4030 steps),
    # against 86.4 / 93.3 / 75.1 % without it (4249 steps, session 5's benchmark); not adopted. λ 1
    # weighs one midpoint per sentence like all its tokens together. λ 0.1, about one token's
    # worth: midpoint 96.1 %, token accuracy 91.8 %, exact 69.7 % (3569 steps at 506 ms, the
    # machine slower). Used here: the trajectory decoder's midpoint term at λ 0.1; in the
    # benchmark of all three decoders (docs/results.md) midpoint 95.8 %, token accuracy 91.5 %.
    # Label smoothing 0.1 (`--label-smoothing`), all three decoders, 1800 s each in one
    # bench_quality run: ODE-RNN greedy 93.33 % / exact 80.18 % (3468 steps at 537 ms, the
    # machine slower) against 94.06 / 85.23 % without (3777 steps); its sentences with one wrong
    # token nearly doubled (307 against 158). GRU 92.30 / 79.50 % (3638 steps) against
    # 92.96 / 82.87 % (4043). Trajectory 91.89 / 65.64 % against 91.47 / 68.25 %, midpoint 97.8
    # against 95.8 %. Not used.
    # Batch 64 instead of 128 (ODE-RNN, 600 s, `--batch-size`): validation token accuracy
    # (teacher-forced) 78.1 / 90.2 % after epochs 1 / 2 where batch 128 had 54.6 / 80.0 %, at
    # 278 against 427 ms per step in epoch 2; at the end of the budget 90.1 % (1891 steps)
    # against 84.7 % (1413 steps). In the benchmark of all three decoders (docs/results.md),
    # greedy token accuracy on the test split: ODE-RNN 94.06 → 96.13 %, GRU 92.96 → 95.81 %,
    # trajectory 91.47 → 94.91 %, on 1.8–2.0 times as many steps as at batch 128.
    "tatoeba-cpu": dict(
        data="tatoeba", units=256, field_type="gated", batch_size=64, learning_rate=2e-3,
        steps_per_unit=1.0, epochs=100, time_budget=1800, vocab_size=20000, min_count=2,
        tied_embeddings=True, bidirectional=True, lr_schedule="cosine", warmup_steps=100,
        dropout=0.1, decoders={
            "odernn": dict(solver="euler", kinetic_energy=0.1, scheduled_sampling=0.5),
            "gru": dict(scheduled_sampling=0.5),
            "trajectory": dict(midpoint_weight=0.1),
        },
    ),
    # A larger model with mixed precision, for a GPU. Untested on a GPU here.
    "gpu": dict(
        data="tatoeba", units=512, field_type="gated", steps_per_unit=2.0, embedding_dim=256,
        batch_size=256, learning_rate=1e-3, epochs=60, mixed_precision=True, min_count=2,
        tied_embeddings=True, bidirectional=True, lr_schedule="cosine", warmup_steps=200,
        dropout=0.1, decoders={"odernn": dict(solver="euler", steps_per_unit=1.0, kinetic_energy=0.1)},
    ),
}


def resolve(preset: str | None, overrides: dict) -> dict:
    """DEFAULTS ← PRESETS[preset] ← the preset's settings for the chosen decoder ← the
    overrides that are not None."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown settings {sorted(unknown)}.")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    settings = dict(PRESETS.get(preset, {}))
    per_decoder = settings.pop("decoders", {})
    config = {**DEFAULTS, **settings}
    config.update(per_decoder.get(overrides.get("decoder", config["decoder"]), {}))
    config.update(overrides)
    return config


def model_settings(config: dict, vocab_size: int) -> dict:
    """The `Seq2SeqODE` keyword arguments a configuration asks for."""
    if config["solver"] in ("dopri5", "bdf"):
        solver = {"name": config["solver"], "rtol": config["rtol"], "atol": config["atol"]}
    else:
        solver = {"name": config["solver"], "steps_per_unit": config["steps_per_unit"]}
    return dict(
        vocab_size=vocab_size,
        decoder=config["decoder"],
        units=config["units"],
        embedding_dim=config["embedding_dim"],
        max_length=config["max_length"],
        solver=solver,
        vector_field=dict(
            type=config["field_type"],
            hidden_units=config["field_units"],
            depth=config["field_depth"],
            activation=config["field_activation"],
            layer_norm=config["layer_norm"],
        ),
        time_span=config["time_span"],
        augment_dim=config["augment_dim"],
        bidirectional=config["bidirectional"],
        variational=config["variational"],
        kl_weight=config["kl_weight"],
        kinetic_energy=config["kinetic_energy"],
        jacobian_norm=config["jacobian_norm"],
        tied_embeddings=config["tied_embeddings"],
        word_dropout=config["word_dropout"],
        dropout=config["dropout"],
        scheduled_sampling=config["scheduled_sampling"],
        context_input=config["context_input"],
        midpoint_weight=config["midpoint_weight"],
    )
