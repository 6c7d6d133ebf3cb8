"""The heater agent: one per heater, in the home.

It keeps the room at its setpoint and makes the heat pay.
"""
