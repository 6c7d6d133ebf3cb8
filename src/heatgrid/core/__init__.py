"""Pure core: physics, control, economics and scheduling on floats and numpy arrays.

Nothing here reads a clock, a file or the network; time is an argument.
"""
