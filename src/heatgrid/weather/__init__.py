"""Weather: EPW files, the Open-Meteo API and a built-in synthetic typical year per city."""
