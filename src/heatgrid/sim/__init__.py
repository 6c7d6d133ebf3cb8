"""Fleet simulator: many homes on the core's vectorized control and scheduling code."""
