"""The heater agent: one per heater, in the home. Keeps the room at its setpoint and makes the heat pay."""
