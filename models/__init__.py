"""Model recipes: base models built from data that ships in packages (installed as ``frugalbench_models``)."""
