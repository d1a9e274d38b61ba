"""Named training configurations: values only.

A run's configuration is DEFAULTS, then the preset, then the preset's settings for the run's
decoder (its "decoders" entry), then the flags. `training.builder` turns it into a model; what
each preset's values were chosen from is in docs/experiments.md.
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
    layer_norm=False,
    time_span=1.0,
    augment_dim=0,
    bidirectional=False,
    variational=False,
    kl_weight=0.0,
    free_bits=0.0,
    mmd_weight=0.0,
    path_energy=0.0,
    path_words=0.0,
    path_temperature=1.0,
    path_energy_rows=16,
    input_noise=0.0,
    input_blank=0.0,
    input_blank_token="unk",
    input_shuffle=0,
    input_noise_fade=0.0,
    kinetic_energy=0.0,
    jacobian_norm=0.0,
    tied_embeddings=False,
    word_dropout=0.0,
    dropout=0.0,
    label_smoothing=0.0,
    scheduled_sampling=0.0,
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
    deterministic=False,
    mixed_precision=False,
    distribute="none",
    logical_cpus=0,
)

PRESETS = {
    # The README's main job: the built-in grammar in a few minutes on a laptop CPU; input-word
    # deletion 0.1 for grammatical paths (docs/experiments.md).
    "synthetic": dict(
        data="synthetic", decoder="odernn", synthetic_size=30000, units=128, embedding_dim=64,
        field_type="gated", solver="euler", steps_per_unit=1.0, tied_embeddings=True,
        bidirectional=True, batch_size=64, learning_rate=5e-3, lr_schedule="cosine",
        warmup_steps=20, epochs=10, input_noise=0.1,
    ),
    # Minimal settings for tests and smoke runs.
    "tiny": dict(
        units=32, field_units=32, embedding_dim=16, synthetic_size=300, batch_size=32, epochs=2,
        vocab_size=500,
    ),
    # Real text on a 2-core CPU in 30 minutes (docs/results.md); decoder word dropout and fading
    # encoder input blanking for fluent, gradual paths (docs/experiments.md).
    "tatoeba-cpu": dict(
        data="tatoeba", units=256, field_type="gated", batch_size=64, learning_rate=2e-3,
        steps_per_unit=1.0, epochs=100, time_budget=1800, vocab_size=20000, min_count=2,
        tied_embeddings=True, bidirectional=True, lr_schedule="cosine", warmup_steps=100,
        dropout=0.1, input_blank=0.15, input_noise_fade=0.3, decoders={
            "odernn": dict(solver="euler", kinetic_energy=0.1, scheduled_sampling=0.5, word_dropout=0.25),
            "gru": dict(scheduled_sampling=0.5, word_dropout=0.25),
            "trajectory": dict(midpoint_weight=0.1),
        },
    ),
    # A larger model with mixed precision, for a GPU.
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
