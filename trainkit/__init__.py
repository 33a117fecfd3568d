"""Shared training pieces for vision/ and ssl_dino/: recipes, accelerate set-up, checkpoints, schedules, logging."""
