"""Decoders from h(0) to token logits, behind one interface.

Token k (1-based) of the output, the last being `<eos>`, lives at time t_k = k·Δt, Δt being
`time_span` (default 1.0: one unit of time per token, so `steps_per_unit` of the fixed-grid
solvers reads as steps per token; the adaptive solvers choose their own steps). h(0) sits at t = 0.

With `dropout > 0`, training zeroes that fraction of the states' entries on their way to the
readout (and of the autoregressive decoders' input embeddings); the flow itself stays
deterministic, and inference never drops anything.

Every decoder offers:
  call(initial_state, target_inputs, training)   teacher-forced logits `[batch, n, vocab]`,
      `target_inputs` `[batch, n]` being `<bos>` followed by the target tokens (the trajectory
      decoder reads only its length);
  decode(initial_state, max_steps, beam_width)    free-running `search.Decoded`;
  states_at(initial_state, times, target_inputs)  `(states [batch, T, units],
      logits [batch, T, vocab])` at any real times `>= 0`.

`TrajectoryDecoder` and `ODERNNDecoder` have a state at every real time; `GRUDecoder`, the
discrete baseline, has none between tokens and holds h_k over (t_{k-1}, t_k].
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode import search
from tfode.solvers import RK4, Euler, fixed_grid_advance
from tfode.text import append_eos
from tfode.layers import GatedVectorField, ODESolve, VectorField


FIXED_GRID = (RK4, Euler)


class Decoder(keras.layers.Layer):
    """What the three decoders share: token times, the readout, the NFE counter."""

    kind = None

    def __init__(
        self,
        vocab_size: int,
        units: int,
        time_span: float = 1.0,
        bos_id: int = 1,
        eos_id: int = 2,
        readout: keras.layers.Layer | None = None,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.vocab_size = vocab_size
        self.dropout = dropout
        # Created only when used, so models saved without dropout keep their variables.
        self.dropout_layer = keras.layers.Dropout(dropout, seed=13, name="dropout") if dropout else None
        self.units = units
        self.time_span = float(time_span)
        self.bos_id = bos_id
        self.eos_id = eos_id
        # `readout` maps `[..., units]` states to `[..., vocab]` float32 logits; the model passes a
        # `TiedReadout` to share the encoder's embeddings (it is not part of `get_config`).
        self.readout = readout or keras.layers.Dense(vocab_size, dtype="float32", name="readout")
        self.last_nfe = self.add_weight(
            name="last_nfe", shape=(), dtype="int32", initializer="zeros", trainable=False
        )

    def drop(self, values, training=None):
        """`values` with dropout applied in training (unchanged without dropout)."""
        if self.dropout_layer is None:
            return values
        return self.dropout_layer(values, training=training)

    def token_times(self, num_positions):
        """`[num_positions]` float32: t_k = k·Δt for k = 1 … num_positions."""
        return tf.cast(tf.range(1, num_positions + 1), tf.float32) * self.time_span

    def interval_index(self, times, num_positions):
        """`[T]` int32, 0-based k with t in (t_k, t_{k+1}], clipped to [0, num_positions)."""
        index = tf.cast(tf.math.ceil(times / self.time_span - 1e-6), tf.int32) - 1
        return tf.clip_by_value(index, 0, num_positions - 1)

    @staticmethod
    def check_times(times):
        times = tf.convert_to_tensor(times, tf.float32)
        times = tf.debugging.assert_all_finite(times, "trajectory times must be finite")
        with tf.control_dependencies(
            [tf.debugging.assert_non_negative(times, message="trajectory times must be >= 0")]
        ):
            return tf.identity(times)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "units": self.units,
            "time_span": self.time_span,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "dropout": self.dropout,
        }


class ODEDecoderMixin:
    """Builds the vector field and solve layer from their configs (or layers)."""

    def make_ode(self, vector_field, solver, **regularization):
        if isinstance(vector_field, dict) and "class_name" in vector_field:
            vector_field = keras.saving.deserialize_keras_object(vector_field)
        elif isinstance(vector_field, dict) or vector_field is None:
            settings = dict(vector_field or {})
            field_class = GatedVectorField if settings.pop("type", "mlp") == "gated" else VectorField
            if field_class is GatedVectorField:
                for ignored in ("depth", "activation", "layer_norm"):
                    settings.pop(ignored, None)
            # The flow stays float32 under mixed precision: adaptive step control needs it.
            vector_field = field_class(**settings, dtype="float32", name="vector_field")
        return ODESolve(vector_field, solver, **regularization, dtype="float32", name="ode")


def _is_whole(number: float) -> bool:
    """True when `number` is a whole number, to within float rounding (1e-6)."""
    return abs(number - round(number)) <= 1e-6


@keras.saving.register_keras_serializable(package="tfode")
class TrajectoryDecoder(ODEDecoderMixin, Decoder):
    """Non-autoregressive: h(t) = ODESolve(f, h(0), t_1 … t_n); token k = readout(h(t_k)).

    With `augment_dim > 0` the state is h(0) padded with that many zeros (augmented neural ODE),
    giving the flow room beyond the encoder's width; `states_at` returns the full state.
    `kinetic_energy` and `jacobian_norm` weight Finlay et al.'s regularisers in training
    (see `ODESolve`).

    With `midpoint_weight > 0`, training adds that weight times −log(p_k + p_{k+1}) at one
    midpoint t_k + Δt/2 per sentence, k drawn uniformly: the state between two tokens is asked
    to hold one of them (midpoint consistency) rather than a third word. It needs a fixed-grid
    solver whose grid has the token times on it (Δt a whole number of steps), so a midpoint is
    the same few steps from h(t_k) in training as in `states_at`; its cost is those steps for
    one row per sentence. The NFE counter does not include them.
    """

    kind = "trajectory"

    def __init__(
        self, vocab_size, units, vector_field=None, solver="rk4", augment_dim=0,
        kinetic_energy=0.0, jacobian_norm=0.0, midpoint_weight=0.0, **kwargs,
    ):
        super().__init__(vocab_size, units, **kwargs)
        self.augment_dim = augment_dim
        self.ode = self.make_ode(
            vector_field, solver, kinetic_energy=kinetic_energy, jacobian_norm=jacobian_norm
        )
        if midpoint_weight < 0:
            raise ValueError(f"midpoint_weight must be >= 0, got {midpoint_weight}.")
        solver = self.ode.solver
        if midpoint_weight and not (
            isinstance(solver, FIXED_GRID) and _is_whole(self.time_span * solver.steps_per_unit)
        ):
            raise ValueError(
                "midpoint_weight needs a fixed-grid solver (rk4, euler) with a whole number "
                f"of steps per token; got {solver.name!r} with Δt = {self.time_span}."
            )
        self.midpoint_weight = float(midpoint_weight)
        # Created only when used, so models saved without the term keep their variables.
        self.midpoint_seed = keras.random.SeedGenerator(29, name="midpoint_seed") if midpoint_weight else None

    def build(self, initial_state_shape, target_inputs_shape=None):
        state_shape = (initial_state_shape[0], self.units + self.augment_dim)
        self.ode.build(state_shape)
        self.readout.build(state_shape)

    def initial_ode_state(self, initial_state):
        if not self.augment_dim:
            return initial_state
        zeros = tf.zeros([tf.shape(initial_state)[0], self.augment_dim], initial_state.dtype)
        return tf.concat([initial_state, zeros], axis=-1)

    def solve(self, initial_state, times, training=None):
        states = self.ode(self.initial_ode_state(initial_state), times, training=training)
        self.last_nfe.assign(self.ode.last_nfe)
        return states

    def call(self, initial_state, target_inputs, training=None):
        states = self.solve(initial_state, self.token_times(tf.shape(target_inputs)[1]), training)
        if training and self.midpoint_weight:
            self.add_loss(self.midpoint_weight * self.midpoint_loss(states, target_inputs, training))
        return self.readout(self.drop(states, training))

    def midpoint_loss(self, token_states, target_inputs, training=None):
        """Mean over sentences of −log(p_k + p_{k+1}) at t_k + Δt/2, one k per sentence.

        Args:
          token_states: `[batch, n, units]`, h(t_1) … h(t_n).
          target_inputs: `[batch, n]`, `<bos>` and the sentence (its targets end in `<eos>`).

        Returns:
          float32 scalar; sentences with a single target token (no midpoint) count for nothing.
        """
        targets = append_eos(target_inputs[:, 1:])  # [batch, n]
        lengths = tf.reduce_sum(tf.cast(targets != 0, tf.int32), axis=1)
        draw = keras.random.uniform(tf.shape(lengths), seed=self.midpoint_seed)
        index = tf.cast(draw * tf.cast(lengths - 1, tf.float32), tf.int32)  # 0-based k - 1
        index = tf.clip_by_value(index, 0, tf.maximum(lengths - 2, 0))
        start = tf.gather(token_states, index, batch_dims=1)
        midpoint_states = fixed_grid_advance(
            self.ode.vector_field, start, tf.cast(index + 1, start.dtype) * self.time_span,
            self.time_span / 2, self.ode.solver,
        )
        log_probs = tf.nn.log_softmax(self.readout(self.drop(midpoint_states, training)))
        neighbours = tf.stack(
            [tf.gather(targets, index, batch_dims=1), tf.gather(targets, index + 1, batch_dims=1)],
            axis=1,
        )  # [batch, 2]
        pair = tf.reduce_logsumexp(tf.gather(log_probs, neighbours, batch_dims=1), axis=1)
        valid = tf.cast(lengths >= 2, tf.float32)
        return -tf.reduce_sum(pair * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

    def decode(self, initial_state, max_steps, beam_width=1):
        if beam_width != 1:
            raise ValueError(
                "The trajectory decoder is non-autoregressive: every token is the most likely "
                "one at its time, so there is no beam to search; use beam_width=1."
            )
        logits = self.readout(self.solve(initial_state, self.token_times(max_steps)))
        log_probs = tf.nn.log_softmax(logits)
        ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        scores = tf.reduce_max(log_probs, axis=-1)
        return search.mask_after_eos(ids, scores, self.eos_id, self.last_nfe.value)

    def states_at(self, initial_state, times, target_inputs=None):
        times = self.check_times(times)
        order = tf.argsort(times)
        inverse = tf.math.invert_permutation(order)
        states = self.solve(initial_state, tf.gather(times, order))
        states = tf.gather(states, inverse, axis=1)
        return states, self.readout(states)

    def get_config(self):
        return {
            **super().get_config(),
            "vector_field": keras.saving.serialize_keras_object(self.ode.vector_field),
            "solver": self.ode.get_config()["solver"],
            "augment_dim": self.augment_dim,
            "kinetic_energy": self.ode.kinetic_energy,
            "jacobian_norm": self.ode.jacobian_norm,
            "midpoint_weight": self.midpoint_weight,
        }


class AutoregressiveDecoder(Decoder):
    """Shared by the ODE-RNN and GRU decoders: a GRU cell folds in the previous token.

    With `scheduled_sampling > 0` (Bengio et al. 2015), training folds in, at each step after
    `<bos>` and independently per sentence, the decoder's own most likely token instead of the
    target's with probability `sampling_rate` (a non-trainable weight that starts at
    `scheduled_sampling`; `training.callbacks.SamplingRamp` raises it from 0 over a run). The
    decoder so learns to continue from its own mistakes, as it must when decoding free-running.
    Inference and validation always read the given tokens.

    With `context_input`, the GRU cell reads h(0) beside each token's embedding, its input
    `[batch, embedding_dim + units]` (the context vector at every step of Cho et al. 2014): the
    sentence's code stays in reach at every token instead of only through the state. Free-running
    search then carries `[h_k, h(0)]`, `[n, 2·units]`, as its state (`search_state`).
    """

    def __init__(
        self, vocab_size, units, embedding_dim=128, scheduled_sampling=0.0, context_input=False,
        **kwargs,
    ):
        super().__init__(vocab_size, units, **kwargs)
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {scheduled_sampling}.")
        self.embedding_dim = embedding_dim
        self.scheduled_sampling = float(scheduled_sampling)
        self.context_input = bool(context_input)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        # Created only when used, so models saved without it keep their variables.
        self.sampling_rate = None
        if scheduled_sampling:
            self.sampling_rate = self.add_weight(
                name="sampling_rate", shape=(), dtype="float32", trainable=False,
                initializer=keras.initializers.Constant(scheduled_sampling),
            )
        self.sampling_seed = keras.random.SeedGenerator(11) if scheduled_sampling else None

    def samples(self, training) -> bool:
        return bool(training) and self.sampling_rate is not None

    def loop_inputs(self, target_inputs, training=None):
        """What the per-token loop (`tf.scan`) reads at step k, as a tuple of `[n, batch, …]`
        tensors: the embedded target inputs `[n, batch, embedding_dim]` (dropout applied), or
        when sampling, the target ids `[n, batch]`, the dropout mask of their embeddings
        `[n, batch, embedding_dim]` and uniform draws `[n, batch]` (2 at `<bos>`: never
        sampled). `step_embedding` turns one step's slice into the embedding folded in."""
        if not self.samples(training):
            embedded = self.drop(self.embedding(target_inputs), training)
            return (tf.transpose(embedded, [1, 0, 2]),)
        # The tokens are embedded inside the loop, once chosen; only the mask's shape is needed here.
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
        """`[batch, embedding_dim]`: the embedding folded into `state` `[batch, units]` at one
        step of the loop, from that step's slice of `loop_inputs`."""
        if len(step_inputs) == 1:
            return step_inputs[0]
        tokens, mask, draws = step_inputs
        predicted = tf.argmax(self.readout(state), axis=-1, output_type=tokens.dtype)
        tokens = tf.where(draws < self.sampling_rate, predicted, tokens)
        return self.embedding(tokens) * mask

    @property
    def cell_input_dim(self) -> int:
        return self.embedding_dim + (self.units if self.context_input else 0)

    def cell_inputs(self, embedded, context):
        """What the GRU cell reads: `embedded` `[batch, embedding_dim]` or
        `[batch, n, embedding_dim]`, with `context_input` followed by h(0) `context`
        `[batch, units]` (repeated over the n positions)."""
        if not self.context_input:
            return embedded
        context = tf.cast(context, embedded.dtype)
        if embedded.shape.rank == 3:
            context = tf.repeat(context[:, None], tf.shape(embedded)[1], axis=1)
        return tf.concat([embedded, context], axis=-1)

    def search_state(self, initial_state):
        """The state `decode` starts from: h(0) `[batch, units]`, with `context_input`
        `[h(0), h(0)]` `[batch, 2·units]` so that every beam carries its sentence's code."""
        if not self.context_input:
            return initial_state
        return tf.concat([initial_state, initial_state], axis=-1)

    def step(self, state, tokens, position):
        """One free-running step (`search.StepFn`) from a `search_state`-shaped `state`."""
        hidden, context = state, state
        if self.context_input:
            hidden, context = state[:, : self.units], state[:, self.units :]
        new_hidden, nfe = self.advance(hidden, self.cell_inputs(self.embedding(tokens), context), position)
        new_state = tf.concat([new_hidden, context], axis=-1) if self.context_input else new_hidden
        return self.readout(new_hidden), new_state, nfe

    def advance(self, state, cell_inputs, position):
        """`(h_{k+1} [batch, units], nfe)` from h_k `state` at token `position` (0-based),
        the cell reading `cell_inputs`."""
        raise NotImplementedError

    def decode(self, initial_state, max_steps, beam_width=1):
        return search.beam_search(
            self.step, self.search_state(initial_state), max_steps, self.bos_id, self.eos_id,
            beam_width,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "scheduled_sampling": self.scheduled_sampling,
            "context_input": self.context_input,
        }


@keras.saving.register_keras_serializable(package="tfode")
class ODERNNDecoder(ODEDecoderMixin, AutoregressiveDecoder):
    """Autoregressive ODE-RNN (Rubanova et al. 2019).

    Between t_{k-1} and t_k the state flows under the ODE; at t_k a GRU cell folds in token k-1
    (`<bos>` first) and token k is read from the result:

        h'_k = ODESolve(f, h_{k-1}, t_{k-1} → t_k),  h_k = GRUCell(embed(y_{k-1}), h'_k),
        logits_k = readout(h_k),

    the cell reading [embed(y_{k-1}), h(0)] instead with `context_input`.

    `states_at(t)` for t in (t_{k-1}, t_k] returns the flowing state h'(t) and the logits the
    decoder would emit if token k-1 were folded in at t, so at t = t_k they equal `call`'s.

    `kinetic_energy` and `jacobian_norm` weight Finlay et al.'s regularisers of the flows
    between tokens in training, their integrals summed over the token intervals. A smaller
    flow keeps h'(t) inside an interval close to where the GRU cell will fold the next token in.
    """

    kind = "odernn"

    def __init__(
        self, vocab_size, units, vector_field=None, solver="rk4", kinetic_energy=0.0,
        jacobian_norm=0.0, **kwargs,
    ):
        super().__init__(vocab_size, units, **kwargs)
        self.ode = self.make_ode(
            vector_field, solver, kinetic_energy=kinetic_energy, jacobian_norm=jacobian_norm
        )
        self.cell = keras.layers.GRUCell(units, name="cell")

    def build(self, initial_state_shape, target_inputs_shape=None):
        self.ode.build(initial_state_shape)
        self.embedding.build((None,))
        self.cell.build((None, self.cell_input_dim))
        self.readout.build(initial_state_shape)

    def flow(self, state, start_time, end_time):
        """`(state at end_time [batch, units], nfe)` from `state` at `start_time`."""
        states, nfe = self.ode.solve(tf.cast(state, self.ode.compute_dtype), tf.reshape(end_time, [1]), start_time)
        return tf.cast(states[:, 0], state.dtype), nfe  # float16 GRU state under mixed precision

    def fold(self, cell_inputs, state):
        output, _ = self.cell(cell_inputs, state)
        return output

    def advance(self, state, cell_inputs, position):
        start = tf.cast(position, tf.float32) * self.time_span
        flowed, nfe = self.flow(state, start, start + self.time_span)
        return self.fold(cell_inputs, flowed), nfe

    def folded_states(self, initial_state, target_inputs, training=None):
        """h_1 … h_n after each fold, `[batch, n, units]`, and the total NFE."""
        self.ode.check_trainable(training)
        if training and not isinstance(self.ode.solver, FIXED_GRID):
            raise ValueError(
                "The ODE-RNN decoder trains with a fixed-grid solver ('rk4' or 'euler'): TFP's "
                "adjoint gradient cannot run inside its per-token loop. Adaptive solvers serve "
                "at inference (`Seq2SeqODE.with_solver`)."
            )
        step_inputs = self.loop_inputs(target_inputs, training)
        starts = self.token_times(tf.shape(target_inputs)[1]) - self.time_span
        if training and self.ode.regularized:
            return self.regularized_folded_states(initial_state, step_inputs, starts)

        def one_token(carry, inputs):
            state, nfe = carry
            step_input, start = inputs
            flowed, step_nfe = self.flow(state, start, start + self.time_span)
            embedded = self.step_embedding(state, step_input)
            return self.fold(self.cell_inputs(embedded, initial_state), flowed), nfe + step_nfe

        states, nfe = tf.scan(
            one_token, (step_inputs, starts), initializer=(initial_state, tf.constant(0))
        )
        return tf.transpose(states, [1, 0, 2]), nfe[-1]

    def regularized_folded_states(self, initial_state, step_inputs, starts):
        """`folded_states` in training with the regularisers: each interval's flow integrates
        ∫||f||² and ∫||εᵀ∂f/∂h||² alongside (one probe ε for the whole sentence); their sums
        over the intervals, batch means, go to `ODESolve.add_penalty`."""
        probe = self.ode.draw_probe(initial_state)
        zero = tf.zeros([tf.shape(initial_state)[0]], tf.float32)

        def one_token(carry, inputs):
            state, nfe, kinetic, jacobian = carry
            step_input, start = inputs
            flowed, step_nfe, step_kinetic, step_jacobian = self.ode.solve_with_integrals(
                tf.cast(state, tf.float32), tf.reshape(start + self.time_span, [1]), start, probe
            )
            inputs = self.cell_inputs(self.step_embedding(state, step_input), initial_state)
            folded = self.fold(inputs, tf.cast(flowed[:, 0], state.dtype))
            return folded, nfe + step_nfe, kinetic + step_kinetic, jacobian + step_jacobian

        states, nfe, kinetic, jacobian = tf.scan(
            one_token, (step_inputs, starts),
            initializer=(initial_state, tf.constant(0), zero, zero),
        )
        self.ode.add_penalty(tf.reduce_mean(kinetic[-1]), tf.reduce_mean(jacobian[-1]))
        return tf.transpose(states, [1, 0, 2]), nfe[-1]

    def call(self, initial_state, target_inputs, training=None):
        states, nfe = self.folded_states(initial_state, target_inputs, training)
        self.last_nfe.assign(nfe)
        return self.readout(self.drop(states, training))

    def states_at(self, initial_state, times, target_inputs):
        times = self.check_times(times)
        num_positions = tf.shape(target_inputs)[1]
        folded, _ = self.folded_states(initial_state, target_inputs)
        # Start of interval k is h_{k-1}: h(0) for the first, then the folded states.
        starts = tf.concat([initial_state[:, None], folded[:, :-1]], axis=1)
        intervals = self.interval_index(times, num_positions)

        def at_time(query):
            time, interval = query
            start_time = tf.cast(interval, tf.float32) * self.time_span
            flowed, _ = self.flow(starts[:, interval], start_time, tf.maximum(time, start_time))
            inputs = self.cell_inputs(self.embedding(target_inputs[:, interval]), initial_state)
            return tf.cast(flowed, tf.float32), self.readout(self.fold(inputs, flowed))

        states, logits = tf.map_fn(
            at_time,
            (times, intervals),
            fn_output_signature=(tf.float32, tf.float32),
        )
        return tf.transpose(states, [1, 0, 2]), tf.transpose(logits, [1, 0, 2])

    def get_config(self):
        return {
            **super().get_config(),
            "vector_field": keras.saving.serialize_keras_object(self.ode.vector_field),
            "solver": self.ode.get_config()["solver"],
            "kinetic_energy": self.ode.kinetic_energy,
            "jacobian_norm": self.ode.jacobian_norm,
        }


@keras.saving.register_keras_serializable(package="tfode")
class GRUDecoder(AutoregressiveDecoder):
    """The discrete baseline: a GRU of the same width, h_k = GRUCell(embed(y_{k-1}), h_{k-1})
    ([embed(y_{k-1}), h(0)] with `context_input`)."""

    kind = "gru"

    def __init__(self, vocab_size, units, **kwargs):
        super().__init__(vocab_size, units, **kwargs)
        self.rnn = keras.layers.GRU(units, return_sequences=True, name="gru")

    def build(self, initial_state_shape, target_inputs_shape=None):
        self.embedding.build((None,))
        self.rnn.build((None, None, self.cell_input_dim))
        self.readout.build(initial_state_shape)

    def advance(self, state, cell_inputs, position):
        output, _ = self.rnn.cell(cell_inputs, state)
        return output, tf.constant(0)

    def call(self, initial_state, target_inputs, training=None):
        if self.samples(training):
            states = self.sampled_states(initial_state, target_inputs, training)
        else:
            embedded = self.drop(self.embedding(target_inputs), training)
            states = self.rnn(self.cell_inputs(embedded, initial_state), initial_state=initial_state)
        return self.readout(self.drop(states, training))

    def sampled_states(self, initial_state, target_inputs, training):
        """h_1 … h_n `[batch, n, units]` with scheduled sampling: the cell one token at a time."""

        def one_token(state, step_input):
            embedded = self.step_embedding(state, step_input)
            output, _ = self.rnn.cell(self.cell_inputs(embedded, initial_state), state)
            return output

        states = tf.scan(one_token, self.loop_inputs(target_inputs, training), initializer=initial_state)
        return tf.transpose(states, [1, 0, 2])

    def states_at(self, initial_state, times, target_inputs):
        times = self.check_times(times)
        embedded = self.cell_inputs(self.embedding(target_inputs), initial_state)
        states = self.rnn(embedded, initial_state=initial_state)
        intervals = self.interval_index(times, tf.shape(target_inputs)[1])
        states = tf.gather(states, intervals, axis=1)
        return states, self.readout(states)


DECODERS = {cls.kind: cls for cls in (TrajectoryDecoder, ODERNNDecoder, GRUDecoder)}
