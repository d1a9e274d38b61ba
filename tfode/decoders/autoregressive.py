"""Autoregressive decoders: a cell that steps from token to token, and one decoder that loops it.

As Keras splits `GRUCell` (one step) from `GRU` (the loop), the two decoders here are one loop,
`AutoregressiveDecoder`, around two cells:

    ODERNNCell   flow then update: h'_k = ODESolve(f, h_{k-1}, t_{k-1} → t_k),
                 h_k = GRUCell(embed(y_{k-1}), h'_k)      (ODE-RNN, Rubanova et al. 2019)
    GRUStepCell  update only:      h_k = GRUCell(embed(y_{k-1}), h_{k-1})   (the discrete baseline)

and token k is read from h_k. The loop does teacher forcing (with word dropout and scheduled
sampling in training), free-running greedy and beam search (`tfode.search`), and the states
between tokens. `ODERNNDecoder` and `GRUDecoder` are that loop with each cell.

A cell is a layer with
  call(state, cell_inputs, start_time, end_time, probe=None, training=None)
      → (h_k [batch, units], nfe int32, kinetic [batch], jacobian [batch])
  state_at(state, cell_inputs, start_time, time) → (shown [batch, units], folded [batch, units])
      what the cell holds at a `time` inside the interval and the state it would read out there
and `solver` (None without a flow) and `regularized`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode import search, solvers
from tfode.checks import check_rate, derive_seed
from tfode.decoders.base import Decoder, FlowRegularization
from tfode.fields import VectorField
from tfode.ode import ODESolve
from tfode.tokens import BOS_ID, EOS_ID, UNK_ID


@keras.saving.register_keras_serializable(package="tfode")
class ODERNNCell(FlowRegularization, keras.layers.Layer):
    """One ODE-RNN step: the state flows under the ODE over the interval, then a GRU cell folds
    in the previous token's embedding.

    Args:
      units: width of the state.
      vector_field: the field f (`tfode.fields`), float32; default a `VectorField()`.
      solver: a solver value; training needs a fixed-grid one (TFP's adjoint cannot run inside the
        per-token loop); adaptive solvers serve at inference (`Seq2SeqODE.with_solver`).
      kinetic_energy, jacobian_norm: Finlay et al.'s regularisers of the flows between tokens,
        their integrals summed over the intervals (`FlowRegularization`).
      seed: seed of the Jacobian probe.
    """

    def __init__(self, units, vector_field=None, solver=None, kinetic_energy=0.0, jacobian_norm=0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.ode = ODESolve(vector_field if vector_field is not None else VectorField(dtype="float32"),
                            solver, name="ode")
        self.init_regularization(kinetic_energy, jacobian_norm, seed)
        self.update = keras.layers.GRUCell(units, seed=derive_seed(seed, "decoder/gru_cell"), name="cell")

    @property
    def solver(self):
        return self.ode.solver

    def build(self, cell_inputs_shape):
        self.ode.build((None, self.units))
        self.update.build(cell_inputs_shape)

    def flow(self, state, start_time, end_time, probe=None, integrals=False, training=None):
        """`ODESolution` of one interval, its state `[batch, units]` in `state`'s dtype."""
        if training:
            refusal = ODERNNDecoder.training_refusal(self.solver)
            if refusal:
                raise ValueError(refusal)
        solution = self.ode(state, tf.reshape(end_time, [1]), start_time, integrals=integrals,
                            probe=probe, training=training)
        return solution._replace(states=tf.cast(solution.states[:, 0], state.dtype))

    def fold(self, cell_inputs, state):
        output, _ = self.update(cell_inputs, state)
        return output

    def call(self, state, cell_inputs, start_time, end_time, probe=None, training=None):
        regularize = bool(training) and self.regularized
        solution = self.flow(state, start_time, end_time, probe, regularize, training)
        zeros = tf.zeros([tf.shape(state)[0]], tf.float32)
        kinetic = solution.kinetic_energy if regularize else zeros
        jacobian = solution.jacobian_norm if solution.jacobian_norm is not None else zeros
        return self.fold(cell_inputs, solution.states), solution.nfe, kinetic, jacobian

    def state_at(self, state, cell_inputs, start_time, time):
        flowed = self.flow(state, start_time, tf.maximum(time, start_time)).states
        return flowed, self.fold(cell_inputs, flowed)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "vector_field": keras.saving.serialize_keras_object(self.ode.vector_field),
            "solver": solvers.solver_to_config(self.solver),
            "kinetic_energy": self.kinetic_energy,
            "jacobian_norm": self.jacobian_norm,
        }


@keras.saving.register_keras_serializable(package="tfode")
class GRUStepCell(keras.layers.Layer):
    """One discrete GRU update per token; it holds h_k over the whole interval (t_{k-1}, t_k].

    A whole teacher-forced sequence runs through `keras.layers.GRU` (`sequence`), which shares the
    cell's weights and takes the fused kernel where there is one.
    """

    solver = None
    regularized = False

    def __init__(self, units, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.rnn = keras.layers.GRU(units, return_sequences=True, seed=seed, name="gru")

    def build(self, cell_inputs_shape):
        self.rnn.build((None, None, cell_inputs_shape[-1]))

    def call(self, state, cell_inputs, start_time=None, end_time=None, probe=None, training=None):
        output, _ = self.rnn.cell(cell_inputs, state)
        zeros = tf.zeros([tf.shape(state)[0]], tf.float32)
        return output, tf.constant(0), zeros, zeros

    def sequence(self, initial_state, cell_inputs):
        """`[batch, n, units]` states from `[batch, n, input_dim]` inputs."""
        return self.rnn(cell_inputs, initial_state=initial_state)

    def state_at(self, state, cell_inputs, start_time, time):
        folded = self.call(state, cell_inputs)[0]
        return folded, folded

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class AutoregressiveDecoder(Decoder):
    """The loop around a cell: token k is read from h_k = cell(h_{k-1}, embed(y_{k-1})),
    `<bos>` first.

    Args:
      vocab_size, units, time_span, dropout, seed: see `Decoder`.
      cell: an `ODERNNCell` or `GRUStepCell` of `units` (built by the subclasses).
      embedding_dim: size of the embeddings of the tokens folded in.
      word_dropout: in training, the fraction of input tokens replaced by `<unk>` (Bowman et al.
        2016), so that the decoder reads the sentence from h(0) rather than from its own words.
      scheduled_sampling: in training, the probability with which the decoder folds in its own
        most likely previous token instead of the target's (Bengio et al. 2015), per sentence and
        step after `<bos>`. It is the initial value of the non-trainable `sampling_rate`, which
        `training.callbacks.SamplingRamp` raises from 0 over a run. Inference and validation
        always read the given tokens.

    `states_at(t)` for t in (t_{k-1}, t_k] returns what the cell holds at t (the flowing state
    for the ODE-RNN, h_k for the GRU) and the logits the decoder would emit if token k-1 were
    folded in at t, so at t = t_k they equal `call`'s.
    """

    autoregressive = True

    def __init__(self, vocab_size, units, cell, embedding_dim=128, word_dropout=0.0,
                 scheduled_sampling=0.0, time_span=1.0, dropout=0.0, seed=None, **kwargs):
        super().__init__(vocab_size, units, time_span=time_span, dropout=dropout, seed=seed, **kwargs)
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}.")
        self.embedding_dim = int(embedding_dim)
        self.word_dropout = check_rate("word_dropout", word_dropout)
        self.scheduled_sampling = check_rate("scheduled_sampling", scheduled_sampling, upper_inclusive=True)
        self.cell = cell
        self.embedding = keras.layers.Embedding(vocab_size, self.embedding_dim, name="embedding")
        # Created only when used, so models saved without them keep their variables.
        self.sampling_rate = None
        if self.scheduled_sampling:
            self.sampling_rate = self.add_weight(
                name="sampling_rate", shape=(), dtype="float32", trainable=False,
                initializer=keras.initializers.Constant(self.scheduled_sampling),
            )
        self.sampling_seed = (keras.random.SeedGenerator(self.derived_seed("sampling"), name="sampling_seed")
                              if self.scheduled_sampling else None)
        self.word_dropout_seed = (keras.random.SeedGenerator(self.derived_seed("word_dropout"), name="word_dropout_seed")
                                  if self.word_dropout else None)

    @property
    def solver(self):
        return self.cell.solver

    @property
    def regularized(self) -> bool:
        return self.cell.regularized

    def build(self, initial_state_shape, target_inputs_shape=None):
        self.embedding.build((None,))
        self.cell.build((None, self.embedding_dim))
        self.readout.build(initial_state_shape)

    # -- teacher forcing ---------------------------------------------------------------------

    def samples(self, training) -> bool:
        return bool(training) and self.sampling_rate is not None

    def drop_words(self, target_inputs, training=None):
        """`target_inputs` with word dropout in training (padding and `<bos>`/`<eos>` never)."""
        if not (training and self.word_dropout):
            return target_inputs
        draw = keras.random.uniform(tf.shape(target_inputs), seed=self.word_dropout_seed)
        drop = tf.logical_and(draw < self.word_dropout, target_inputs > EOS_ID)
        return tf.where(drop, tf.constant(UNK_ID, target_inputs.dtype), target_inputs)

    def loop_inputs(self, target_inputs, training=None):
        """What the per-token loop reads at step k, as a tuple of `[n, batch, …]` tensors: the
        embedded inputs `[n, batch, embedding_dim]` (dropout applied), or when sampling, the
        target ids `[n, batch]`, the dropout mask of their embeddings and uniform draws
        `[n, batch]` (2 at `<bos>`: never sampled). `step_embedding` turns one step's slice into
        the embedding folded in."""
        if not self.samples(training):
            embedded = self.drop(self.embedding(target_inputs), training)
            return (tf.transpose(embedded, [1, 0, 2]),)
        mask_shape = tf.concat([tf.shape(target_inputs), [self.embedding_dim]], axis=0)
        mask = self.drop(tf.ones(mask_shape, self.embedding.compute_dtype), training)
        draws = keras.random.uniform(tf.shape(target_inputs), seed=self.sampling_seed)
        draws = tf.concat([tf.fill([tf.shape(draws)[0], 1], 2.0), draws[:, 1:]], axis=1)
        return (
            tf.transpose(target_inputs, [1, 0]),
            tf.transpose(mask, [1, 0, 2]),
            tf.transpose(draws, [1, 0]),
        )

    def step_embedding(self, state, step_inputs):
        """`[batch, embedding_dim]`: the embedding folded into `state` at one step of the loop."""
        if len(step_inputs) == 1:
            return step_inputs[0]
        tokens, mask, draws = step_inputs
        predicted = tf.argmax(self.readout(state), axis=-1, output_type=tokens.dtype)
        tokens = tf.where(draws < self.sampling_rate, predicted, tokens)
        return self.embedding(tokens) * mask

    def folded_states(self, initial_state, target_inputs, training=None):
        """`(h_1 … h_n [batch, n, units], nfe, kinetic [batch], jacobian [batch])`."""
        if (not self.samples(training) and not (training and self.cell.regularized)
                and hasattr(self.cell, "sequence")):
            embedded = self.drop(self.embedding(target_inputs), training)
            zeros = tf.zeros([tf.shape(initial_state)[0]], tf.float32)
            return self.cell.sequence(initial_state, embedded), tf.constant(0), zeros, zeros
        step_inputs = self.loop_inputs(target_inputs, training)
        starts = self.token_times(tf.shape(target_inputs)[1]) - self.time_span
        probe = self.cell.draw_probe(tf.cast(initial_state, tf.float32)) if training and self.cell.regularized else None
        zeros = tf.zeros([tf.shape(initial_state)[0]], tf.float32)

        def one_token(carry, inputs):
            state, nfe, kinetic, jacobian = carry
            step_input, start = inputs
            embedded = self.step_embedding(state, step_input)
            new_state, step_nfe, step_kinetic, step_jacobian = self.cell(
                state, embedded, start, start + self.time_span, probe=probe, training=training
            )
            return new_state, nfe + step_nfe, kinetic + step_kinetic, jacobian + step_jacobian

        states, nfe, kinetic, jacobian = tf.scan(
            one_token, (step_inputs, starts),
            initializer=(initial_state, tf.constant(0), zeros, zeros),
        )
        return tf.transpose(states, [1, 0, 2]), nfe[-1], kinetic[-1], jacobian[-1]

    def call(self, initial_state, target_inputs, training=None):
        target_inputs = self.drop_words(target_inputs, training)
        states, nfe, kinetic, jacobian = self.folded_states(initial_state, target_inputs, training)
        kinetic, jacobian = tf.reduce_mean(kinetic), tf.reduce_mean(jacobian)
        if training and self.cell.regularized:
            self.cell.add_flow_penalty(kinetic, jacobian)
        return self.decoder_output(self.readout(self.drop(states, training)), nfe, kinetic, jacobian)

    # -- free running ------------------------------------------------------------------------

    def step(self, state, tokens, position):
        """One free-running step (`search.StepFn`): `(logits, h_{k+1}, nfe)`."""
        start = tf.cast(position, tf.float32) * self.time_span
        new_state, nfe, _, _ = self.cell(state, self.embedding(tokens), start, start + self.time_span)
        return self.readout(new_state), new_state, nfe

    def decode(self, initial_state, max_steps, beam_width=1):
        return search.beam_search(self.step, initial_state, max_steps, BOS_ID, EOS_ID, beam_width)

    # -- between tokens ----------------------------------------------------------------------

    def states_at(self, initial_state, times, target_inputs):
        times = self.check_times(times)
        num_positions = tf.shape(target_inputs)[1]
        folded, _, _, _ = self.folded_states(initial_state, target_inputs)
        # Interval k starts from h_{k-1}: h(0) for the first, then the folded states.
        starts = tf.concat([initial_state[:, None], folded[:, :-1]], axis=1)
        intervals = self.interval_index(times, num_positions)

        def at_time(query):
            time, interval = query
            start_time = tf.cast(interval, tf.float32) * self.time_span
            shown, state = self.cell.state_at(
                starts[:, interval], self.embedding(target_inputs[:, interval]), start_time, time
            )
            return tf.cast(shown, tf.float32), self.readout(state)

        states, logits = tf.map_fn(at_time, (times, intervals),
                                   fn_output_signature=(tf.float32, tf.float32))
        return tf.transpose(states, [1, 0, 2]), tf.transpose(logits, [1, 0, 2])

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "word_dropout": self.word_dropout,
            "scheduled_sampling": self.scheduled_sampling,
        }


@keras.saving.register_keras_serializable(package="tfode")
class ODERNNDecoder(AutoregressiveDecoder):
    """The autoregressive ODE-RNN (Rubanova et al. 2019): `AutoregressiveDecoder` around an
    `ODERNNCell`.

    Args:
      vector_field, solver, kinetic_energy, jacobian_norm: the cell's (`ODERNNCell`).
      Others: see `AutoregressiveDecoder`.
    """

    @classmethod
    def training_refusal(cls, solver) -> str | None:
        if solver is not None and not solver.steps_in_a_loop:
            return (f"The ODE-RNN decoder trains with a fixed-grid solver (rk4, euler): the {solver.name} "
                    "solver's adjoint gradient cannot run inside its per-token loop. Adaptive solvers serve "
                    "at inference (`Seq2SeqODE.with_solver`).")
        return super().training_refusal(solver)

    def __init__(self, vocab_size, units, vector_field=None, solver=None, kinetic_energy=0.0,
                 jacobian_norm=0.0, seed=None, **kwargs):
        cell = ODERNNCell(units, vector_field, solver, kinetic_energy, jacobian_norm,
                          seed=derive_seed(seed, "decoder/probe"),
                          name="odernn_cell")
        super().__init__(vocab_size, units, cell, seed=seed, **kwargs)

    @property
    def vector_field(self):
        return self.cell.ode.vector_field

    def get_config(self):
        cell = self.cell.get_config()
        return {
            **super().get_config(),
            **{key: cell[key] for key in ("vector_field", "solver", "kinetic_energy", "jacobian_norm")},
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vector_field"] = keras.saving.deserialize_keras_object(config["vector_field"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfode")
class GRUDecoder(AutoregressiveDecoder):
    """The discrete baseline of the same width: `AutoregressiveDecoder` around a `GRUStepCell`."""

    def __init__(self, vocab_size, units, seed=None, **kwargs):
        super().__init__(vocab_size, units, GRUStepCell(units, seed=derive_seed(seed, "decoder/gru_cell"), name="gru_cell"),
                         seed=seed, **kwargs)
