"""Pure neuron step functions: ``step(input, state, params) -> (output, new_state)``."""
