"""Device physics: pure functions of conductance, time and an explicit generator."""
