"""From suite to stored results: recipes, variants (the only producer of target artefacts), the runner, bench."""
