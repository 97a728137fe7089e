"""The model IR: networks and their layers, datasets, int8 arithmetic, training, exporters and importers."""
